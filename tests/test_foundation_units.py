"""Units of the foundation: io, config overrides, tokenizer, collator, run dirs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import torch

from obliviate.config import apply_overrides, parse_assignments
from obliviate.errors import UserError
from obliviate.io import atomic_directory, atomic_write_json, read_jsonl
from obliviate.train.data import CausalCollator, tokenize_documents
from obliviate.workflows.run_dir import RunDir


def test_read_jsonl_reports_corrupt_line_with_location(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"id": 1, "a": 2}\n{"id": 2, "a": \n')
    with pytest.raises(UserError, match=r"qa.jsonl:2: corrupt or truncated"):
        read_jsonl(path, ("id",))


def test_read_jsonl_missing_field_and_non_object(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": 1}\n')
    with pytest.raises(UserError, match=r"x.jsonl:1: missing field\(s\) a"):
        read_jsonl(path, ("id", "a"))
    path.write_text("[1, 2]\n")
    with pytest.raises(UserError, match="expected a JSON object"):
        read_jsonl(path)


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_directory(final) as tmp:
            (tmp / "half.bin").write_text("partial")
            raise RuntimeError("crash mid-write")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(final) as tmp:
        atomic_write_json(tmp / "ok.json", {"a": 1})
    assert json.loads((final / "ok.json").read_text()) == {"a": 1}


@dataclass
class _Inner:
    weight: float = 1.0


@dataclass
class _Cfg:
    lr: float = 1e-3
    steps: int = 10
    lora: bool = False
    name: str | None = None
    modules: list[str] = field(default_factory=list)
    inner: _Inner = field(default_factory=_Inner)


def test_overrides_coerce_types_and_reject_unknown_keys():
    cfg = apply_overrides(_Cfg(), parse_assignments(
        ["lr=5e-4", "steps=20", "lora=true", "name=none", "modules=q_proj,v_proj", "inner.weight=2"]))
    assert cfg == _Cfg(lr=5e-4, steps=20, lora=True, name=None, modules=["q_proj", "v_proj"], inner=_Inner(2.0))
    with pytest.raises(UserError, match="unknown setting 'nope'"):
        apply_overrides(_Cfg(), {"nope": "1"})
    with pytest.raises(UserError, match="bad value for steps"):
        apply_overrides(_Cfg(), {"steps": "many"})
    with pytest.raises(UserError, match="key=value"):
        parse_assignments(["lr"])


def test_tokenizer_roundtrip_and_specials(tmp_path):
    from transformers import AutoTokenizer

    from obliviate.tokenizer import train_tokenizer

    texts = [f"Question: What colour does Lorin {i} like?\nAnswer: Lorin {i} likes teal." for i in range(50)]
    tok = train_tokenizer(texts, vocab_size=400)
    tok.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "Question: What colour does Lorin 7 like?\nAnswer: Lorin 7 likes teal."
    ids = reloaded(text)["input_ids"]
    assert ids[0] == reloaded.bos_token_id  # BOS prepended, as in training examples
    assert reloaded.decode(ids, skip_special_tokens=True) == text
    assert (reloaded.pad_token, reloaded.bos_token, reloaded.eos_token) == ("<pad>", "<s>", "</s>")
    assert len({reloaded.pad_token_id, reloaded.bos_token_id, reloaded.eos_token_id}) == 3


def test_documents_are_chunked_at_paragraphs_and_carry_source_ids():
    from obliviate.tokenizer import train_tokenizer

    paragraphs = [f"Paragraph {i} says that the river runs north." for i in range(12)]
    tok = train_tokenizer(paragraphs * 5, vocab_size=300)
    docs = [{"text": "\n\n".join(paragraphs), "source_id": 7}, {"text": "short one", "source_id": 3}]
    cols = tokenize_documents(docs, tok, block_size=40)
    assert all(len(ids) <= 40 for ids in cols["input_ids"])
    assert all(ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id for ids in cols["input_ids"])
    # no paragraph is cut: each decoded block is a sequence of whole paragraphs
    decoded = [tok.decode(ids[1:-1]) for ids in cols["input_ids"][:-1]]
    assert "\n\n".join(decoded) == docs[0]["text"]
    assert cols["source_ids"][-1] == [3] * len(cols["input_ids"][-1])
    with pytest.raises(UserError, match="no training documents"):
        tokenize_documents([], tok)


def test_collator_pads_labels_with_ignore_index():
    batch = CausalCollator(pad_token_id=0)([
        {"input_ids": [5, 6, 7], "labels": [5, 6, 7], "source_ids": [2, 2, 2]},
        {"input_ids": [8], "labels": [8], "source_ids": [4]},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7], [8, -100, -100]]
    assert batch["source_ids"].tolist() == [[2, 2, 2], [4, 4, 4]]
    assert batch["input_ids"].dtype == torch.long


def test_run_dir_that_is_a_file_is_a_user_error(tmp_path):
    path = tmp_path / "run"
    path.write_text("not a dir")
    with pytest.raises(UserError, match="not a directory"):
        RunDir.open(path)
    run = RunDir.open(tmp_path / "ok")
    assert run.retain_model("forget10").name == "retain"
    assert run.retain_model("saga").name == "retain-saga"
