"""``obliviate serve`` on a dense model (micro world): a deletion is a background job in a
worker process, and the crash test.

One scenario, two server processes on one ledger:

1. a deletion is queued and its job runs (the worker is held asleep, as a long job is);
   the server is killed with SIGKILL during the job: the worker dies with it, nothing
   was written where a model is expected;
2. the restarted server serves the old model, marks the job failed and queues it again
   (the ledger holds every transition), removes the half-written temporary directory a
   killed save leaves, runs the job (unlearning, evaluation against the retain model, an
   attack), and swaps the new model in only when it is done: every completion until then
   came from the old model.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import openai
import pytest
from test_serve_support import ADMIN, CLIENT_TOKEN, ServerProcess

from obliviate.data.format import qa_prompt
from obliviate.world.loader import load_world


@pytest.fixture(scope="module")
def dense_run(micro_world, tmp_path_factory):
    """Full and retain models of the micro world, trained briefly (the job needs a model, not a good one)."""
    from obliviate.workflows.train import train_run

    root = tmp_path_factory.mktemp("serve_dense")
    train_run(micro_world, root, forget="forget10", progress=False, overrides={"epochs": "4"})
    return root


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_dense_deletion_job_survives_a_crash_and_swaps_only_when_done(dense_run, micro_world, tmp_path):
    world = load_world(micro_world)
    source = next(s for s in world.sources if s["kind"] == "author" and s["source_id"] in world.splits["forget10"])
    question = next(q for q in world.qa if q["source_id"] == source["source_id"])
    ledger = tmp_path / "ledger.sqlite"
    models_dir = tmp_path / "ledger-models"
    args = ["--model", dense_run / "models" / "full", "--world", micro_world, "--ledger", ledger,
            "--retain-model", dense_run / "models" / "retain", "--set", "max_steps=5", "--attack", "adversarial"]

    # -- 1: queued, running, then kill -9 during the job --------------------------------------
    first = ServerProcess(args, tmp_path, env={"OBLIVIATE_SERVE_JOB_DELAY": "300"})
    health = first.wait_ready()
    old_hash = health["model_hash"]
    with httpx.Client(base_url=first.url, timeout=30.0) as http:
        response = http.post("/v1/deletions", json={"sources": [f"re:^{source['name']}$"]}, headers=ADMIN)
        assert response.status_code == 202, response.text
        record = response.json()
        assert (record["status"], record["sources"], record["source_names"], record["method"]) == (
            "queued", [source["source_id"]], [source["name"]], "grad_diff")
        deletion = record["id"]
        wait_for(lambda: http.get(f"/v1/deletions/{deletion}").json()["status"] == "running", 30, "the job to run")
        workers = wait_for(lambda: children(first.process.pid), 10, "the worker process")
    first.kill(signal.SIGKILL)
    assert first.process.returncode == -signal.SIGKILL
    wait_for(lambda: not any(alive(pid) for pid in workers), 10, "the worker to die with the server")
    assert not (models_dir / f"{deletion}-a1").exists()   # never half-written where a model is expected
    (models_dir / f".{deletion}-a1.crash.tmp").mkdir(parents=True)   # what a save killed midway leaves

    # -- 2: restart: old model, failed + re-queued, the job runs, swap when done ---------------
    second = ServerProcess(args, tmp_path)
    health = second.wait_ready()
    assert health["model_hash"] == old_hash and health["state_version"] == 0
    assert not (models_dir / f".{deletion}-a1.crash.tmp").exists()
    assert "re-queued ['" + deletion + "']" in second.output()
    prompt = qa_prompt(question["question"])
    seen: list[tuple[str, str]] = []   # (status before the request, model hash that answered)
    api = openai.OpenAI(base_url=second.url + "/v1", api_key=CLIENT_TOKEN, max_retries=0)
    with httpx.Client(base_url=second.url, timeout=60.0) as http:
        def status() -> str:
            return http.get(f"/v1/deletions/{deletion}").json()["status"]

        deadline = time.monotonic() + 240
        while (state := status()) != "done":
            assert state in ("queued", "running") and time.monotonic() < deadline, state
            body = http.post("/v1/completions", json={"prompt": prompt, "max_tokens": 6, "temperature": 0}).json()
            seen.append((state, body["obliviate"]["model_hash"]))
            time.sleep(0.3)
        final = http.get(f"/v1/deletions/{deletion}").json()
        after = api.completions.create(model="full", prompt=prompt, max_tokens=6, temperature=0)
        health = http.get("/healthz").json()
        certificate = http.get(f"/v1/deletions/{deletion}/certificate").json()["certificate"]
    second.kill()

    assert seen and {model for _, model in seen} == {old_hash}   # the old model until the job was done
    assert [(h["status"], h["attempt"]) for h in final["history"]] == [
        ("queued", 0), ("running", 1), ("failed", 1), ("queued", 1), ("running", 2), ("done", 2)]
    assert "interrupted" in final["history"][2]["reason"]
    new_dir = models_dir / f"{deletion}-a2"
    assert final["model_dir_after"] == str(new_dir) and final["model_hash_before"] == old_hash
    assert final["model_hash_after"] != old_hash and health["model_hash"] == final["model_hash_after"]
    assert after.model_extra["obliviate"]["model_hash"] == final["model_hash_after"]
    assert (new_dir / "model.safetensors").is_file() and not (models_dir / f"{deletion}-a1").exists()
    assert sorted(p.name for p in models_dir.iterdir()) == [f"{deletion}-a2"]   # no leftover
    summary = final["summary"]
    assert 0.0 <= summary["forget_quality"] <= 1.0 and 0.0 <= summary["model_utility"] <= 1.0
    assert certificate["certified"] and certificate["evaluation"]["reference"] == str(dense_run / "models" / "retain")
    assert certificate["evaluation"]["summary"]["forget_quality"] == summary["forget_quality"]
    # the retain model was trained without all of forget10, not without this one source
    assert certificate["evaluation"]["reference_exact"] is False
    # the attack ran on the new model, with the retain model as its baseline
    (attack,) = certificate["attacks"]
    assert attack["name"] == "adversarial" and 0.0 <= attack["result"]["adversarial_any_accuracy"] <= 1.0
    assert 0.0 <= attack["result"]["adversarial_retain_any_accuracy"] <= 1.0
    assert Path(certificate["attacks_json"]).is_file()


def test_a_dense_model_needs_a_world(cli, dense_run, tmp_path):
    code, _, err = cli("serve", "--model", dense_run / "models" / "full", "--ledger", tmp_path / "l.sqlite",
                       "--port", "0")
    assert code == 2 and err.strip() == "error: a dense model's deletions retrain it on a world: give --world DIR"
    code, _, err = cli("serve", "--model", dense_run / "models" / "full", "--ledger", tmp_path / "l.sqlite",
                       "--set", "max_stepz=3")
    assert code == 2 and "max_stepz" in err
