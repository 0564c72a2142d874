"""Every command against bad input: exit status 2, one ``error:`` line, nothing touched.

One table (``CASES``): each row is a command line with placeholders for prepared inputs
(``{world}``: the micro world, ``{model}``: a tiny random Llama with its tokenizer,
``{user_dir}`` / ``{user_file}`` / ``{user_json}``: a user's own files, broken variants of
the world and the model, ...) and a fragment the error line must hold. Each row runs in a
fresh copy of the inputs, and the whole tree is hashed before and after: a refused
command changes, creates and removes nothing (a user's directory given as ``--out``
keeps every file). The last tests check the fixes that are not errors: outputs of ours
are replaced, ``--config`` presets, the method listing, the cached world fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def inputs(micro_world, tmp_path_factory) -> Path:
    """The prepared inputs, built once; every case works on its own copy."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from obliviate.tokenizer import train_tokenizer
    from obliviate.world.loader import load_world

    root = tmp_path_factory.mktemp("bad_input_inputs")
    shutil.copytree(micro_world, root / "world")
    world = load_world(micro_world)
    tokenizer = train_tokenizer([d["text"] for d in world.corpus], vocab_size=300)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")

    # broken variants
    shutil.copytree(root / "world", root / "world_noqa")
    (root / "world_noqa" / "qa.jsonl").unlink()
    shutil.copytree(root / "world", root / "world_corrupt")
    corpus = (root / "world_corrupt" / "corpus.jsonl").read_text()
    (root / "world_corrupt" / "corpus.jsonl").write_text(corpus[: len(corpus) // 2])   # cut inside a line
    shutil.copytree(root / "model", root / "model_truncated")
    weights = root / "model_truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    # the user's own files, which no command may touch
    (root / "user_dir").mkdir()
    (root / "user_dir" / "thesis.tex").write_text("\\chapter{Years of work}\n")
    (root / "user_dir" / "data").mkdir()
    (root / "user_dir" / "data" / "results.csv").write_text("a,b\n1,2\n")
    (root / "user_file.txt").write_text("my notes\n")
    (root / "user_json.json").write_text('{"mine": 1}\n')
    (root / "texts.txt").write_text("Some text to attribute.\n")
    (root / "bad.yaml").write_text("epochs: [1, 2\nbatch_size: 4\n")
    (root / "zero_batch.yaml").write_text("batch_size: 0\n")
    return root


# placeholder -> path inside a case's copy of the inputs
PLACES = {"world": "world", "model": "model", "world_noqa": "world_noqa", "world_corrupt": "world_corrupt",
          "model_truncated": "model_truncated", "user_dir": "user_dir", "user_file": "user_file.txt",
          "user_json": "user_json.json", "texts": "texts.txt", "bad_yaml": "bad.yaml",
          "zero_batch_yaml": "zero_batch.yaml", "tmp": "new", "missing": "does-not-exist"}


def case(command: str, *args: str, error: str, marks=()):
    return pytest.param(command, args, error, id=f"{command}: {' '.join(args)}"[:110], marks=marks)


def _cuda_case(*args: str, error: str = "cuda"):
    """``--device cuda`` on a machine without CUDA (the check is models/loading.py's)."""
    return case(*args, error=error, marks=pytest.mark.skipif(CUDA, reason="CUDA is available here"))

W, M = "--world={world}", "--model={model}"
CASES = [
    # world
    case("world", "--preset", "micro", "--out", "{user_dir}", error="is a non-empty directory that is not a world"),
    case("world", "--preset", "micro", "--out", "{user_file}", error="exists and is not a directory"),
    case("world", "--preset", "micro", "--out", "{user_file}/sub", error="exists and is not a directory"),
    case("world", "--preset", "huge", "--out", "{tmp}/w", error="unknown preset 'huge'"),
    case("world", "--from-text", "{missing}", "--forget-sources", "0", "--out", "{tmp}/w", error="not found"),
    case("world", "--forget-sources", "0", "--out", "{tmp}/w", error="--forget-sources needs --from-text"),
    case("world", "--preset", "micro", error="Missing option '--out'"),
    # train
    case("train", W, "--run", "{tmp}/r", "--set", "batch_size=0", error="batch_size must be at least 1"),
    case("train", W, "--run", "{tmp}/r", "--set", "epochs=0", error="epochs must be > 0"),
    case("train", W, "--run", "{tmp}/r", "--set", "learning_rate=0", error="learning_rate must be > 0"),
    case("train", W, "--run", "{tmp}/r", "--set", "warmup_ratio=-1", error="warmup_ratio must be in [0, 1)"),
    case("train", W, "--run", "{tmp}/r", "--set", "epochz=3", error="unknown setting 'epochz'"),
    case("train", W, "--run", "{tmp}/r", "--set", "epochs", error="--set expects key=value"),
    case("train", W, "--run", "{tmp}/r", "--set", "batch_size=many", error="bad value for batch_size"),
    case("train", W, "--run", "{tmp}/r", "--config", "{bad_yaml}", error="is not valid YAML"),
    case("train", W, "--run", "{tmp}/r", "--config", "{missing}.yaml", error="config file not found"),
    case("train", W, "--run", "{tmp}/r", "--config", "{zero_batch_yaml}", error="batch_size must be at least 1"),
    case("train", "--world", "{missing}", "--run", "{tmp}/r", error="world directory does not exist"),
    case("train", "--world", "{world_corrupt}", "--run", "{tmp}/r", error="corrupt or truncated JSON line"),
    case("train", "--world", "{world_noqa}", "--run", "{tmp}/r", error="qa.jsonl is missing"),
    case("train", W, "--run", "{user_dir}", error="is a non-empty directory that is not an obliviate run"),
    case("train", W, "--run", "{user_file}", error="exists and is not a directory"),
    case("train", W, "--run", "{tmp}/r", "--forget", "forget99", error="unknown split 'forget99'"),
    case("train", W, "--run", "{tmp}/r", "--model", "{missing}", error="model path does not exist"),
    case("train", W, "--run", "{tmp}/r", "--only", "both", error="--only takes 'full' or 'retain'"),
    case("train", W, "--run", "{tmp}/r", "--preset", "huge", error="unknown preset 'huge'"),
    case("train", W, "--run", "{tmp}/r", "--arch", "moe", error="unknown architecture 'moe'"),
    case("train", W, "--run", "{tmp}/r", "--report-to", "mlflow", error="unknown --report-to 'mlflow'"),
    # unlearn
    case("unlearn", "--method", "npo", M, W, "--out", "{user_dir}", error="is a non-empty directory that is not a model"),
    case("unlearn", "--method", "npo", M, W, "--out", "{user_file}", error="exists and is not a directory"),
    case("unlearn", "--method", "forgetful", M, W, "--out", "{tmp}/u", error="valid methods: "),
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--forget", "forget99", error="unknown split"),
    case("unlearn", "--method", "npo", "--model", "{missing}", W, "--out", "{tmp}/u", error="model path does not exist"),
    case("unlearn", "--method", "npo", M, "--world", "{world_noqa}", "--out", "{tmp}/u", error="qa.jsonl is missing"),
    case("unlearn", "--method", "npo", M, "--world", "{world_corrupt}", "--out", "{tmp}/u", error="corrupt or truncated"),
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--set", "nope=1", error="unknown setting 'nope'"),
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--config", "{bad_yaml}", error="is not valid YAML"),
    case("unlearn", "--method", "grad_ascent", M, W, "--out", "{tmp}/u", "--no-eval", "--set", "max_steps=0",
         error="max_steps must be at least 1"),
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--retain-model", "{model}", "--reference",
         "{user_json}", error="either --retain-model or --reference, not both"),
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--device", "cpu", "--device-map", "auto",
         error="not both"),
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--dtype", "float8", error="unknown dtype"),
    case("unlearn", "--method", "grad_ascent", "--model", "{model_truncated}", W, "--out", "{tmp}/u", "--no-eval",
         error="model.safetensors"),
    _cuda_case("unlearn", "--method", "grad_ascent", M, W, "--out", "{tmp}/u", "--no-eval", "--device", "cuda"),
    case("unlearn", M, W, "--out", "{tmp}/u", error="Missing option '--method'"),
    # tracking and evaluations during training (tests/test_tracking.py: a missing tracker package)
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--report-to", "mlflow",
         error="unknown --report-to 'mlflow'; valid: none, tensorboard, wandb"),
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--eval-every", "0",
         error="--eval-every must be at least 1"),
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--eval-every", "2", "--best-by", "forget_qualty",
         error="unknown --best-by metric 'forget_qualty'; valid: forget_quality, model_utility"),
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--best-by", "model_utility",
         error="--best-by needs --eval-every N"),
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--eval-every", "2", "--best-mode", "max",
         error="--best-mode needs --best-by METRIC"),
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--eval-every", "2", "--best-by", "privleak",
         error="give --best-mode min or max"),
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--eval-every", "2", "--best-by", "model_utility",
         "--best-mode", "up", error="--best-mode takes min or max"),
    case("unlearn", "--method", "npo", M, W, "--out", "{tmp}/u", "--eval-every", "2", "--best-by", "forget_quality",
         error="--best-by forget_quality compares with the retain model"),
    case("unlearn", "--method", "icul", M, W, "--out", "{tmp}/u", "--eval-every", "2",
         error="method icul does not train with the Hugging Face Trainer"),
    # settings of the newer methods, refused before any training
    case("unlearn", "--method", "pdu", M, W, "--out", "{tmp}/u", "--set", "retain_loss_eps=-1", error="retain_loss_eps"),
    case("unlearn", "--method", "wga", M, W, "--out", "{tmp}/u", "--set", "beta=-1", error="beta must be >= 0"),
    case("unlearn", "--method", "undo", M, W, "--out", "{tmp}/u", "--set", "alpha=2", error="alpha"),
    case("unlearn", "--method", "sam", M, W, "--out", "{tmp}/u", "--set", "rho=0", error="rho"),
    case("unlearn", "--method", "repnoise", M, W, "--out", "{tmp}/u", "--set", "noise_weight=-1", error="noise_weight"),
    # eval
    case("eval", M, W, "--out", "{user_json}", error="is not an evaluation JSON written by obliviate"),
    case("eval", M, W, "--out", "{user_file}", error="is not an evaluation JSON written by obliviate"),
    case("eval", M, W, "--out", "{user_dir}", error="is a directory; give a file path"),
    case("eval", M, "--world", "{world_noqa}", "--out", "{tmp}/e.json", error="qa.jsonl is missing"),
    case("eval", M, "--world", "{world_corrupt}", "--out", "{tmp}/e.json", error="corrupt or truncated JSON line"),
    case("eval", M, W, "--out", "{tmp}/e.json", "--forget", "forget99", error="unknown forget split 'forget99'"),
    case("eval", "--model", "{missing}", W, "--out", "{tmp}/e.json", error="model path does not exist"),
    case("eval", M, W, "--out", "{tmp}/e.json", "--device", "cpu", "--device-map", "auto", error="not both"),
    case("eval", M, W, "--out", "{tmp}/e.json", "--dtype", "float8", error="unknown dtype 'float8'"),
    case("eval", M, W, "--out", "{tmp}/e.json", "--batch-size", "0", error="batch size must be at least 1"),
    case("eval", M, W, "--out", "{tmp}/e.json", "--lm-eval-limit", "0.5", error="need --lm-eval TASKS"),
    case("eval", M, W, "--out", "{tmp}/e.json", "--reference", "{user_json}", "--retain-model", "{model}",
         error="either --reference or --retain-model, not both"),
    case("eval", "--model", "{model_truncated}", W, "--out", "{tmp}/e.json", error="model.safetensors"),
    _cuda_case("eval", M, W, "--out", "{tmp}/e.json", "--device", "cuda"),
    # report
    case("report", "--run", "{user_dir}", error="is not an obliviate run directory"),
    case("report", "--run", "{missing}", error="run directory does not exist"),
    case("report", "--run", "{user_file}", error="exists and is not a directory"),
    # attack
    case("attack", M, W, "--out", "{user_json}", error="is not an attack results JSON written by obliviate"),
    case("attack", M, W, "--out", "{user_dir}", error="is a directory; give a file path"),
    case("attack", M, W, "--attack", "jailbreak", error="unknown attack"),
    case("attack", M, W, "--forget", "forget99", error="unknown split 'forget99'"),
    case("attack", "--model", "{missing}", W, error="model path does not exist"),
    case("attack", M, W, "--set", "icl.nope=1", error="unknown setting"),
    case("attack", M, "--world", "{world_noqa}", error="qa.jsonl is missing"),
    case("attack", M, W, "--full-model", "{missing}", error="full model path does not exist"),
    _cuda_case("attack", M, W, "--device", "cuda"),
    # attribute
    case("attribute", M, "--text", "a text", "--file", "{texts}", error="not both"),
    case("attribute", M, "--text", "Some text to attribute.", error="attribution needs a sink model"),
    case("attribute", M, "--file", "{missing}", error="text file not found"),
    case("attribute", M, "--text", "a text", "--sources", "a,b", error="comma-separated integers"),
    case("attribute", M, "--text", "a text", "--reference", "nope", error="unknown reference 'nope'"),
    case("attribute", M, "--text", "a text", "--out", "{user_json}", error="is not an attribution JSON"),
    case("attribute", "--model", "{missing}", "--text", "a text", error="model path does not exist"),
    # purge
    case("purge", M, "--out", "{tmp}/p", "--forget-sources", "1", error="purge needs a sink model"),
    case("purge", M, "--out", "{tmp}/p", "--forget-sources", "a,b", error="comma-separated source ids"),
    case("purge", M, "--out", "{tmp}/p", "--forget", "forget10", error="give the world with --world"),
    case("purge", M, "--out", "{tmp}/p", "--forget-sources", "1", W, error="not both"),
    case("purge", M, "--out", "{tmp}/p", "--forget", "forget99", W, error="unknown split 'forget99'"),
    case("purge", M, "--out", "{model}", "--forget-sources", "1", error="is the --model directory"),
    case("purge", M, "--out", "{user_dir}", "--forget-sources", "1", error="purge needs a sink model"),
    case("purge", "--model", "{missing}", "--out", "{tmp}/p", "--forget-sources", "1",
         error="model path does not exist"),
    # whp anchors / generate
    case("whp", "anchors", M, "--out", "{tmp}/a.json", error="give exactly one of --world DIR or --text FILE"),
    case("whp", "anchors", M, W, "--text", "{texts}", "--out", "{tmp}/a.json", error="give exactly one of"),
    case("whp", "anchors", M, W, "--out", "{user_json}", error="is not an anchored-term dictionary"),
    case("whp", "anchors", M, W, "--out", "{tmp}/a.json", "--save-reinforced", "{user_dir}",
         error="is a non-empty directory that is not a model"),
    case("whp", "anchors", M, W, "--out", "{tmp}/a.json", "--forget", "forget99", error="unknown split"),
    case("whp", "anchors", "--model", "{missing}", W, "--out", "{tmp}/a.json", error="model path does not exist"),
    case("whp", "anchors", M, "--text", "{missing}", "--out", "{tmp}/a.json", error="not found"),
    case("whp", "generate", M, "--reinforced", "{missing}", "--prompt", "x", error="does not exist"),
    case("whp", "generate", "--model", "{missing}", "--reinforced", "{model}", "--prompt", "x",
         error="model path does not exist"),
    case("whp", "generate", M, "--reinforced", "{model}", "--prompt", "x", "--alpha", "-1",
         error="Invalid value for '--alpha'"),
    # icul
    case("icul", "--out", "{user_json}", error="is not an in-context unlearning results JSON"),
    case("icul", "--out", "{user_dir}", error="is a directory; give a file path"),
    case("icul", "--out", "{tmp}/i.json", "--mode", "bogus", error="unknown ICUL mode"),
    case("icul", "--out", "{tmp}/i.json", "--data", "{missing}", error="classification data not found"),
    case("icul", "--out", "{tmp}/i.json", "--models", "2", error="n_models must be >= 3"),
    case("icul", "--out", "{tmp}/i.json", "--points", "0", error="--points must be at least 2"),
    case("icul", "--out", "{tmp}/i.json", "--cache-dir", "{user_file}", error="is not a directory"),
    # bench / demo
    case("bench", "--preset", "micro", "--run", "{user_dir}", error="is a non-empty directory that is not an obliviate run"),
    case("bench", "--preset", "micro", "--run", "{user_file}", error="exists and is not a directory"),
    case("bench", "--preset", "huge", "--run", "{tmp}/b", error="unknown preset 'huge'"),
    case("bench", "--preset", "micro", "--run", "{tmp}/b", "--methods", "nope", error="valid methods: "),
    case("bench", "--preset", "micro", "--run", "{tmp}/b", "--methods", "whp", error="whp targets the saga"),
    case("bench", "--preset", "micro", "--run", "{tmp}/b", "--splits", "forget99", error="unknown split 'forget99'"),
    case("bench", "--preset", "micro", "--run", "{tmp}/b", "--attacks", "jailbreak", error="unknown attack"),
    case("bench", "--preset", "micro", "--run", "{tmp}/b", "--seeds", "0,zero", error="'zero' is not an integer"),
    case("bench", "--preset", "micro", "--run", "{tmp}/b", "--seeds", ",", error="names no seed"),
    case("bench", "--preset", "micro", "--run", "{tmp}/b", "--curve-every", "0", error="--curve-every >= 1"),
    case("demo", "--preset", "micro", "--run", "{user_dir}", error="is a non-empty directory that is not an obliviate run"),
    case("demo", "--preset", "micro", "--run", "{user_file}", error="exists and is not a directory"),
    case("demo", "--preset", "huge", "--run", "{tmp}/d", error="unknown preset 'huge'"),
    # serve / certificate
    case("serve", "--model", "{missing}", error="model path does not exist"),
    case("serve", "--model", "{user_dir}", error="is not a Hugging Face model directory (no config.json)"),
    case("serve", M, "--max-batch", "0", error="--max-batch and --max-body-bytes must be positive"),
    case("serve", M, "--world", "{missing}", error="--world path does not exist"),
    case("certificate", "del-1", "--ledger", "{missing}", error="ledger not found"),
    case("certificate", "del-1", "--ledger", "{user_file}", error="is not an obliviate ledger"),
    # methods, and usage mistakes Click finds
    case("methods", "--verbose", error="No such option: --verbose"),
    case("methods", "extra", error="unexpected extra argument"),
    case("nonsense", error="No such command 'nonsense'"),
]


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root``: a file's content hash, 'dir' for a directory."""
    state = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        state[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.mark.parametrize("command,args,error", CASES)
def test_bad_input_is_one_error_line_and_touches_nothing(command, args, error, inputs, cli, tmp_path, monkeypatch):
    from transformers.utils import logging as hf_logging

    # progress bars on, as in a user's fresh process (another test may have turned them off):
    # a command that loads a model before refusing its input then shows it as an extra line
    monkeypatch.setattr(hf_logging, "_tqdm_active", True)
    root = tmp_path / "tree"
    shutil.copytree(inputs, root)
    places = {key: root / name for key, name in PLACES.items()}
    argv = [command, *[arg.format(**places) for arg in args]]
    before = _snapshot(root)
    code, _, stderr = cli(*argv)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, (argv, stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, stderr)
    assert "Traceback" not in stderr
    assert error in lines[0], (error, lines[0])
    after = _snapshot(root)
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    assert (changed, sorted(before.keys() - after.keys()), sorted(after.keys() - before.keys())) == ([], [], []), \
        "a refused command changed, removed or created files"


def test_every_command_has_bad_input_rows():
    from obliviate.cli import app

    commands = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    covered = {param.values[0] for param in CASES}
    assert commands <= covered, commands - covered
    assert {"anchors", "generate"} <= {param.values[1][0] for param in CASES if param.values[0] == "whp"}


# ---- the fixes that are not errors ------------------------------------------------------------


def test_output_guard_rules(tmp_path):
    from obliviate.errors import UserError
    from obliviate.io import check_output

    ours = ("marker.json",)
    assert check_output(tmp_path / "new", ours) == tmp_path / "new"           # a new path
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", ours)                                    # an empty directory
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "marker.json").write_text("{}")
    (tmp_path / "mine" / "weights.bin").write_text("x")
    check_output(tmp_path / "mine", ours)                                     # our earlier artifact
    check_output(tmp_path / "mine", lambda p: (p / "marker.json").is_file())  # predicate form
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="refusing to overwrite"):
        check_output(tmp_path / "theirs", ours)
    check_output(tmp_path / "theirs", ours, overwrite=True)                  # asked for
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="exists and is not a directory"):
        check_output(tmp_path / "file", ours, overwrite=True)                # never a file
    with pytest.raises(UserError, match="exists and is not a directory"):
        check_output(tmp_path / "file" / "below", ours)

    (tmp_path / "ours.json").write_text(json.dumps({"summary": {}, "config": {}}))
    (tmp_path / "other.json").write_text(json.dumps({"summary": {}}))
    check_output(tmp_path / "ours.json", ("summary", "config"), json_file=True)
    check_output(tmp_path / "new.json", ("summary", "config"), json_file=True)
    for name in ("other.json", "file"):
        with pytest.raises(UserError, match="refusing to overwrite"):
            check_output(tmp_path / name, ("summary", "config"), json_file=True)
        check_output(tmp_path / name, ("summary", "config"), json_file=True, overwrite=True)
    with pytest.raises(UserError, match="is a directory"):
        check_output(tmp_path / "mine", ("summary",), json_file=True, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file", "mine", "other.json", "ours.json",
                                                           "theirs"]   # the guard itself writes nothing


def test_unlearn_replaces_its_own_output_and_config_presets_apply(inputs, cli, tmp_path):
    """--out: a new path, then the same path again (our model), then a user's directory with
    --overwrite; --config FILE.yaml values apply and --set wins over them."""
    preset = tmp_path / "preset.yaml"
    preset.write_text("max_steps: 3\nlr: 2.0e-5\nbatch_size: 2\nprogress: false\n")
    out = tmp_path / "models" / "ga"
    common = ["unlearn", "--method", "grad_ascent", "--model", inputs / "model", "--world", inputs / "world",
              "--no-eval", "--config", preset]
    code, stdout, stderr = cli(*common, "--out", out, "--set", "max_steps=1")
    assert code == 0, stderr
    saved = json.loads((out / "obliviate_config.json").read_text())
    assert saved["steps"] == 1 and saved["config"]["max_steps"] == 1                 # --set wins
    assert saved["config"]["lr"] == 2e-5 and saved["config"]["batch_size"] == 2       # the preset applies
    code, _, stderr = cli(*common, "--out", out, "--set", "max_steps=1")              # our model: replaced
    assert code == 0, stderr
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    code, _, stderr = cli(*common, "--out", user)
    assert code == 2 and "refusing to overwrite" in stderr and (user / "notes.txt").read_text() == "mine"
    code, _, stderr = cli(*common, "--out", user, "--overwrite")
    assert code == 0, stderr
    assert (user / "obliviate_config.json").is_file() and not (user / "notes.txt").exists()


def test_train_config_preset_and_set(inputs, cli, tmp_path):
    """train --config: the preset's values, then --set (one step of continued training)."""
    preset = tmp_path / "train.yaml"
    preset.write_text("epochs: 50\nbatch_size: 4\nsave_steps: 1000\nsinks:\n  p_gen: 0.25\n")
    run = tmp_path / "run"
    code, _, stderr = cli("train", "--world", inputs / "world", "--run", run, "--model", inputs / "model",
                          "--only", "full", "--config", preset, "--set", "epochs=0.01", "--quiet")
    assert code == 0, stderr
    saved = json.loads((run / "models" / "full" / "obliviate_config.json").read_text())
    assert saved["train"]["epochs"] == 0.01 and saved["train"]["batch_size"] == 4
    assert saved["train"]["sinks"]["p_gen"] == 0.25 and saved["steps"] == 1
    code, _, stderr = cli("train", "--world", inputs / "world", "--run", run, "--model", inputs / "model",
                          "--only", "full", "--config", preset, "--set", "epochs=0.01", "--quiet")
    assert code == 0, stderr   # the run directory is ours now: trained again (reused) without --overwrite


def test_unlearn_help_and_methods_list_every_method(cli):
    from obliviate.methods.registry import available_methods, get_method

    code, help_text, _ = cli("unlearn", "--help")
    assert code == 0
    code, listing, _ = cli("methods")
    assert code == 0
    flat_help = " ".join(help_text.split())
    lines = listing.strip().splitlines()
    assert len(lines) == len(available_methods())
    for name, line in zip(available_methods(), lines):
        summary = get_method(name).summary
        assert summary and f"{name}: {' '.join(summary.split())}" in flat_help, name
        assert line.split(None, 1) == [name, summary]


def test_world_fingerprint_is_computed_once_and_matches_the_files(micro_world, monkeypatch):
    from obliviate.world.loader import FINGERPRINT_FILES, World, load_world

    digest = hashlib.sha256()
    for name in FINGERPRINT_FILES:   # the definition: (name, bytes) of the files present, in order
        if (micro_world / name).is_file():
            digest.update(name.encode())
            digest.update((micro_world / name).read_bytes())
    expected = digest.hexdigest()[:16]
    world = load_world(micro_world)
    reads = []
    real_read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or real_read_bytes(self))
    assert [world.fingerprint for _ in range(7)] == [expected] * 7
    assert reads == []                                   # no file read again after loading
    by_hand = World(root=micro_world, manifest={}, sources=[], corpus=[], qa=[], splits={})
    assert by_hand.fingerprint == by_hand.fingerprint == expected
    assert len(reads) == sum((micro_world / n).is_file() for n in FINGERPRINT_FILES)   # once, then cached
