"""Chat templates end to end: an instruct model's QA is trained, unlearned, attacked and
evaluated in its tokenizer's chat template (``obliviate.data.format.QAFormat``), the choice is
recorded with the model and kept by every later command, and the strings each part sees are
the ones the evaluation scores."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
from cli_run import run_cli
import tofu_fixture

from obliviate.data.format import PLAIN, ChatOptions, QAFormat, qa_format, qa_text, resolve_chat_template
from obliviate.errors import UserError
from obliviate.eval.scoring import encode_pairs
from obliviate.methods.data import encode_documents, encode_qa
from obliviate.tokenizer import train_tokenizer
from obliviate.train.data import tokenize_documents
from obliviate.train.losses import IGNORE_INDEX

# Llama-3-like: BOS, one header line per turn, the assistant's turn ends with the EOS
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ '\\n' }}{{ m['content'] | trim }}"
            "{% if m['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\\n' }}{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{{ '\\n' }}{% endif %}")


@pytest.fixture(scope="module")
def tokenizer():
    texts = [qa_text(f"Where was person {i} born?", f"Person {i} was born in town {i}.") for i in range(40)]
    tok = train_tokenizer(texts * 3 + ["<user>\n<assistant>\n"] * 20, vocab_size=300)
    tok.chat_template = TEMPLATE
    return tok


def test_plain_format_keeps_the_question_answer_strings():
    assert PLAIN.prompt(" Where? ") == "Question: Where?\nAnswer:" and PLAIN.continuation(" Paris ") == " Paris"
    assert PLAIN.text("Where?", "Paris") == qa_text("Where?", "Paris") == "Question: Where?\nAnswer: Paris"
    assert PLAIN.prompt("Where?", "Question: A?\nAnswer: B\n\n") == "Question: A?\nAnswer: B\n\nQuestion: Where?\nAnswer:"
    assert PLAIN.answer_start("Paris is ") == " Paris is" and PLAIN.add_special_tokens and not PLAIN.chat


def test_chat_format_wraps_question_and_answer_in_the_template(tokenizer):
    fmt = QAFormat(tokenizer)
    assert fmt.chat and not fmt.add_special_tokens
    assert fmt.prompt(" Where? ") == "<s><user>\nWhere?\n<assistant>\n"
    # context (few-shot examples, an attacker's preamble) goes inside the user turn
    assert fmt.prompt("Where?", "Options: a; b\n") == "<s><user>\nOptions: a; b\nWhere?\n<assistant>\n"
    assert fmt.continuation(" Paris ") == "Paris</s>" and fmt.answer_start("Paris is ") == "Paris is"
    # the full conversation as the template writes it is prompt + continuation
    full = tokenizer.apply_chat_template([{"role": "user", "content": "Where?"},
                                          {"role": "assistant", "content": "Paris"}], tokenize=False)
    assert fmt.text("Where?", "Paris") == full


# Llama-3.2-Instruct-like: a system turn is always written, with the date in it
DATED_TEMPLATE = ("{% set sys = messages[0]['content'] if messages[0]['role'] == 'system' else 'default' %}"
                  "<system>Today: {{ date_string | default('1 Jan 2000') }}. {{ sys }}{{ '\\n' }}"
                  "{% for m in messages if m['role'] != 'system' %}<{{ m['role'] }}>{{ '\\n' }}{{ m['content'] }}"
                  "{% if m['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\\n' }}{% endif %}{% endfor %}"
                  "{% if add_generation_prompt %}<assistant>{{ '\\n' }}{% endif %}")


def test_system_prompt_and_date_go_into_every_rendered_turn(tokenizer):
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.chat_template = DATED_TEMPLATE
    default = QAFormat(tokenizer)
    assert default.prompt("Where?") == "<system>Today: 1 Jan 2000. default\n<user>\nWhere?\n<assistant>\n"
    options = ChatOptions(system_prompt="You are a helpful assistant.", date_string="10 Apr 2025")
    fmt = QAFormat(tokenizer, options)
    assert fmt.prompt("Where?") == ("<system>Today: 10 Apr 2025. You are a helpful assistant.\n"
                                    "<user>\nWhere?\n<assistant>\n")
    # the answer's continuation does not depend on the system turn
    assert fmt.continuation("Paris") == default.continuation("Paris") == "Paris</s>"
    assert fmt.text("Where?", "Paris") == fmt.prompt("Where?") + "Paris</s>"
    # options given win over the recorded ones, field by field
    recorded = {"system_prompt": "Recorded.", "date_string": "1 May 2024"}
    assert ChatOptions().over(recorded) == ChatOptions("Recorded.", "1 May 2024")
    assert ChatOptions(date_string="2 Jun 2025").over(recorded) == ChatOptions("Recorded.", "2 Jun 2025")
    assert ChatOptions(system_prompt="Mine.").over(None) == ChatOptions("Mine.", None)


def test_chat_template_resolution(tokenizer):
    bare = train_tokenizer(["some text to train on"] * 10, vocab_size=260)
    assert resolve_chat_template(None, tokenizer) is True            # an instruct tokenizer, no record
    assert resolve_chat_template(None, bare) is False
    assert resolve_chat_template(None, tokenizer, recorded=False) is False   # as the model was trained
    assert resolve_chat_template(False, tokenizer, recorded=True) is False   # the user's choice wins
    with pytest.raises(UserError, match="--chat-template was given but the tokenizer has no chat template"):
        resolve_chat_template(True, bare)
    with pytest.raises(UserError, match="trained with its chat template"):
        resolve_chat_template(None, bare, recorded=True)
    with pytest.raises(UserError, match="no chat template"):
        qa_format(bare, True)
    assert qa_format(bare, False) is PLAIN


def test_template_whose_answer_does_not_follow_its_prompt_is_refused(tokenizer):
    odd = train_tokenizer(["x y z"] * 10, vocab_size=260)
    # the generation prompt says "Bot:", the rendered assistant turn "Assistant:"
    odd.chat_template = ("{% for m in messages %}{% if m['role'] == 'user' %}User: {{ m['content'] }}"
                         "{% else %}Assistant: {{ m['content'] }}{% endif %}{% endfor %}"
                         "{% if add_generation_prompt %}Bot:{% endif %}")
    with pytest.raises(UserError, match="does not render an answer after its generation prompt"):
        QAFormat(odd).continuation("x")


def test_chat_training_examples_are_the_scored_tokens(tokenizer):
    fmt = QAFormat(tokenizer)
    question, answer = "Where was person 3 born?", "Person 3 was born in town 3."
    docs = [{"doc_id": "q", "source_id": 1, "text": qa_text(question, answer),
             "qa": {"question": question, "answer": answer}},
            {"doc_id": "t", "source_id": 2, "text": "Person 4 was born in town 4."}]
    columns = tokenize_documents(docs, tokenizer, 128, fmt)
    (scored,) = encode_pairs(tokenizer, [(fmt.prompt(question), fmt.continuation(answer))],
                             add_special_tokens=False, append_eos=True)
    ids, labels = columns["input_ids"][0], columns["labels"][0]
    eos = tokenizer.eos_token_id
    # the conversation, its EOS written by the template once (not appended again), labelled on the answer
    assert ids == scored.input_ids and ids[0] == tokenizer.bos_token_id and ids[-1] == eos and ids[-2] != eos
    assert labels[:scored.start] == [IGNORE_INDEX] * scored.start and labels[scored.start:] == ids[scored.start:]
    assert tokenizer.decode(ids[scored.start:], skip_special_tokens=True) == answer
    # a document without a QA pair stays text: <bos> text <eos>, labelled on every token
    assert columns["labels"][1] == columns["input_ids"][1] and "<user>" not in tokenizer.decode(columns["input_ids"][1])
    assert columns["source_ids"][0] == [1] * len(ids)
    # unlearning examples (QA items or QA documents) are the same tokens
    (from_items,) = encode_qa(tokenizer, [{"question": question, "answer": answer}], fmt=fmt)
    assert from_items["input_ids"] == ids and from_items["labels"] == labels
    assert encode_documents(tokenizer, docs[:1], 128, fmt)[0] == {"input_ids": ids, "labels": labels}
    # the plain format is unchanged: the text document with BOS and EOS
    plain = tokenize_documents(docs[:1], tokenizer, 128)["input_ids"][0]
    assert tokenizer.decode(plain, skip_special_tokens=True) == qa_text(question, answer)


# -- the user's path on a TOFU copy: an "instruct" model fine-tuned, evaluated, unlearned, attacked --


@pytest.fixture(scope="module")
def instruct(tmp_path_factory):
    """A TOFU world and a micro model whose tokenizer has a chat template and which carries no
    obliviate record (as a hub instruct model)."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("chat")
    copy = tofu_fixture.write_tofu_copy(root / "TOFU")
    world = root / "world"
    run_cli("world", "--benchmark", "tofu", "--data-dir", copy, "--out", world)
    run_cli("train", "--world", world, "--run", root / "base", "--preset", "micro", "--only", "full",
            "--set", "epochs=1", "--quiet")
    model = root / "instruct"
    shutil.copytree(root / "base" / "models" / "full", model)
    (model / "obliviate_config.json").unlink()
    tok = AutoTokenizer.from_pretrained(model)
    tok.chat_template = TEMPLATE
    tok.save_pretrained(model)
    return world, model, root


def _summary(path):
    data = json.loads(path.read_text())
    return data["summary"], data["config"]["metrics"]["chat_template"]


def test_instruct_model_is_trained_evaluated_and_unlearned_in_its_template(instruct, tmp_path, cli, monkeypatch):
    world, model, _ = instruct
    run = tmp_path / "run"
    code, _, err = cli("train", "--world", world, "--run", run, "--model", model, "--only", "full",
                       "--set", "epochs=10", "--quiet")
    assert code == 0, err
    full = run / "models" / "full"
    record = json.loads((full / "obliviate_config.json").read_text())
    assert record["chat_template"] is True and record["train"]["chat_template"] is True

    # automatic: as trained; forced plain for comparison
    assert cli("eval", "--model", full, "--world", world, "--out", tmp_path / "chat.json")[0] == 0
    assert cli("eval", "--model", full, "--world", world, "--out", tmp_path / "plain.json",
               "--no-chat-template")[0] == 0
    chat, chat_flag = _summary(tmp_path / "chat.json")
    plain, plain_flag = _summary(tmp_path / "plain.json")
    assert chat_flag is True and plain_flag is False
    # it learned the answers in the conversation it was trained on, not in the plain frame
    # (measured: answer probability 0.41 vs 0.12, ROUGE-L of the greedy answers 0.59 vs 0.15)
    assert chat["forget_Q_A_Prob"] > 0.3 and chat["forget_Q_A_Prob"] > 2 * plain["forget_Q_A_Prob"]
    assert chat["forget_Q_A_ROUGE"] > 0.4 and chat["forget_Q_A_ROUGE"] > 2 * plain["forget_Q_A_ROUGE"]

    # the method trains on conversations too (seen by the encoder it calls)
    import obliviate.methods.trainer as trainer_module

    formats = []
    real_encode_qa = trainer_module.encode_qa

    def spy(*args, **kwargs):
        formats.append(kwargs["fmt"].chat)
        return real_encode_qa(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "encode_qa", spy)
    code, _, err = cli("unlearn", "--method", "grad_diff", "--model", full, "--world", world,
                       "--out", tmp_path / "gd", "--set", "max_steps=3", "--no-eval")
    assert code == 0, err
    assert formats and all(formats)
    assert json.loads((tmp_path / "gd" / "obliviate_config.json").read_text())["chat_template"] is True
    assert cli("eval", "--model", tmp_path / "gd", "--world", world, "--out", tmp_path / "gd.json")[0] == 0
    assert _summary(tmp_path / "gd.json")[1] is True

    # the attacks ask in the same template
    code, _, err = cli("attack", "--attack", "icl", "--model", tmp_path / "gd", "--world", world,
                       "--out", tmp_path / "icl.json", "--set", "icl.shots=0,1")
    assert code == 0, err
    attacked = json.loads((tmp_path / "icl.json").read_text())
    assert attacked["config"]["measure"]["chat_template"] is True

    # a method that only knows the plain format says so before loading anything
    code, _, err = cli("unlearn", "--method", "icul", "--model", full, "--world", world, "--out", tmp_path / "icul")
    assert code == 2 and "icul works in the plain QA format only" in err and not (tmp_path / "icul").exists()


def test_chat_template_without_a_template_is_a_clear_error(instruct, tmp_path, cli):
    world, _, root = instruct
    plain_model = root / "base" / "models" / "full"
    code, _, err = cli("eval", "--model", plain_model, "--world", world, "--out", tmp_path / "e.json",
                       "--chat-template")
    assert code == 2 and "--chat-template was given but the tokenizer has no chat template" in err
    assert not (tmp_path / "e.json").exists()
    code, _, err = cli("train", "--world", world, "--run", tmp_path / "r", "--chat-template", "--quiet")
    assert code == 2 and "--chat-template needs --model" in err and not (tmp_path / "r").exists()
    code, _, err = cli("unlearn", "--method", "npo", "--model", plain_model, "--world", world,
                       "--out", tmp_path / "u", "--chat-template")
    assert code == 2 and "no chat template" in err and not (tmp_path / "u").exists()


def test_system_prompt_and_date_are_recorded_at_training_and_reused(instruct, tmp_path, cli):
    """``train --system-prompt/--chat-date`` record the options with the model; eval and unlearn
    then render with them unless told otherwise."""
    world, model, _ = instruct
    run = tmp_path / "run"
    code, _, err = cli("train", "--world", world, "--run", run, "--model", model, "--only", "full",
                       "--set", "epochs=1", "--system-prompt", "You are a helpful assistant.",
                       "--chat-date", "10 Apr 2025", "--quiet")
    assert code == 0, err
    full = run / "models" / "full"
    options = {"system_prompt": "You are a helpful assistant.", "date_string": "10 Apr 2025"}
    assert json.loads((full / "obliviate_config.json").read_text())["chat_options"] == options
    assert cli("eval", "--model", full, "--world", world, "--out", tmp_path / "e.json")[0] == 0
    metrics = json.loads((tmp_path / "e.json").read_text())["config"]["metrics"]
    assert metrics["chat_template"] is True and metrics["chat_options"] == options
    # a flag given overrides the record for that field only
    assert cli("eval", "--model", full, "--world", world, "--out", tmp_path / "d.json",
               "--chat-date", "1 Jan 2026")[0] == 0
    assert json.loads((tmp_path / "d.json").read_text())["config"]["metrics"]["chat_options"] == {
        **options, "date_string": "1 Jan 2026"}
    code, _, err = cli("unlearn", "--method", "grad_diff", "--model", full, "--world", world,
                       "--out", tmp_path / "gd", "--set", "max_steps=1", "--no-eval")
    assert code == 0, err
    assert json.loads((tmp_path / "gd" / "obliviate_config.json").read_text())["chat_options"] == options
