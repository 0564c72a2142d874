"""``obliviate serve`` on a sink model: a real server process on 127.0.0.1, driven with httpx
and the official ``openai`` client.

The toy sink model knows two facts per source ("What does person1 eat?" -> food4); a
deletion switches a source's sinks off and the very next request answers otherwise,
while other sources keep their answers. Then: every 4xx case, the ledger page (and its
screenshot in headless Chromium when /usr/bin/chromium is there), a small load test,
and a restart that replays the ledger.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import threading
import time

import httpx
import openai
import pytest
from test_serve_support import ADMIN, ADMIN_TOKEN, CLIENT, CLIENT_TOKEN, ServerProcess, complete, save_toy_sink_model

from obliviate.data.format import qa_prompt

CHROMIUM = "/usr/bin/chromium"


def food_prompt(source: int) -> str:
    return qa_prompt(f"What does person{source} eat?")


def food(source: int) -> str:
    return f"food{(7 * source + 3) % 6}"


@pytest.fixture(scope="module")
def sink_model(tmp_path_factory):
    return save_toy_sink_model(tmp_path_factory.mktemp("serve_sink") / "sinks")


@pytest.fixture(scope="module")
def server(sink_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve_sink_server")
    with ServerProcess(["--model", sink_model, "--ledger", tmp / "ledger.sqlite"], tmp) as process:
        yield process


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


def test_health_models_and_completions(server, client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["kind"] == "sink" and health["state_version"] == 0
    models = client.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["sinks"]
    # the model knows every source's fact (greedy, route mode), one prompt or several in one request
    body = client.post("/v1/completions", json={"model": "sinks", "prompt": [food_prompt(0), food_prompt(2)],
                                                 "max_tokens": 3, "temperature": 0}).json()
    assert [c["text"] for c in body["choices"]] == [food(0), food(2)]
    assert [c["finish_reason"] for c in body["choices"]] == ["stop", "stop"]   # EOS after the answer
    assert body["usage"] == {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22}


def test_the_openai_client_works_unchanged(server):
    api = openai.OpenAI(base_url=server.url + "/v1", api_key=CLIENT_TOKEN, max_retries=0)
    assert [m.id for m in api.models.list().data] == ["sinks"]
    completion = api.completions.create(model="sinks", prompt=food_prompt(3), max_tokens=2, temperature=0)
    assert completion.choices[0].text == food(3)
    chat = api.chat.completions.create(model="sinks", messages=[{"role": "user", "content": "What does person5 eat?"}],
                                       max_tokens=2, temperature=0)
    assert chat.choices[0].message.role == "assistant" and chat.choices[0].message.content == food(5)
    with pytest.raises(openai.NotFoundError, match="is not served here"):
        api.completions.create(model="gpt-4", prompt="x", max_tokens=1)
    # a sampled completion runs too (its text is whatever the model samples)
    sampled = api.completions.create(model="sinks", prompt=food_prompt(3), max_tokens=2, temperature=1.0, seed=1)
    assert sampled.choices[0].finish_reason in ("stop", "length")


def test_a_switch_deletion_changes_the_next_answer(server, client):
    assert complete(client, food_prompt(1))["choices"][0]["text"] == food(1)
    started = time.perf_counter()
    response = client.post("/v1/deletions", json={"sources": [1]}, headers=ADMIN)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    record = response.json()
    assert (record["status"], record["method"], record["sources"], record["requester"]) == ("done", "switch", [1],
                                                                                             "alice")
    assert record["forgotten_after"] == [1] and record["state_version"] == 1
    assert record["model_hash_before"] == record["model_hash_after"]            # no weight changes
    assert record["state_hash_before"] != record["state_hash_after"]
    assert elapsed < 2.0
    # the very next request: another answer for the forgotten source, the same for the others
    after = complete(client, food_prompt(1))
    assert after["choices"][0]["text"] != food(1) and after["obliviate"]["state_version"] >= 1
    assert complete(client, food_prompt(0))["choices"][0]["text"] == food(0)
    # the ledger has it, once; so do the list, the status and the certificate
    listed = client.get("/v1/deletions").json()["data"]
    assert [d["id"] for d in listed] == [record["id"]]
    assert client.get(f"/v1/deletions/{record['id']}").json()["status"] == "done"
    cert = client.get(f"/v1/deletions/{record['id']}/certificate").json()
    assert cert["certificate"]["certified"] and cert["certificate"]["what"]["sources"] == [1]
    markdown = client.get(f"/v1/deletions/{record['id']}/certificate", params={"format": "md"})
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith(f"# Deletion certificate {record['id']}") and "| by |" not in markdown.text
    assert "**By**: alice" in markdown.text
    # deleting an already forgotten source again is recorded, and changes nothing
    again = client.post("/v1/deletions", json={"sources": ["1"]}, headers=ADMIN).json()
    assert again["newly_forgotten"] == [] and again["forgotten_after"] == [1]


@pytest.mark.parametrize("method, path, kwargs, status, code", [
    ("post", "/v1/deletions", {"content": b'{"sources": [1', "headers": ADMIN}, 400, "invalid_json"),
    ("post", "/v1/deletions", {"content": b"[1, 2]", "headers": ADMIN}, 400, "invalid_json"),
    ("post", "/v1/deletions", {"json": {"sources": [99]}, "headers": ADMIN}, 400, "invalid_request"),
    ("post", "/v1/deletions", {"json": {"sources": ["re:^person"]}, "headers": ADMIN}, 400, "invalid_request"),
    ("post", "/v1/deletions", {"json": {"sources": []}, "headers": ADMIN}, 400, "invalid_request"),
    ("post", "/v1/deletions", {"json": {"sources": [2], "method": "npo"}, "headers": ADMIN}, 400, "invalid_request"),
    ("post", "/v1/deletions", {"json": {"sources": [2], "why": "x"}, "headers": ADMIN}, 400, "invalid_value"),
    ("post", "/v1/deletions", {"json": {"sources": [2]}}, 401, "missing_token"),
    ("post", "/v1/deletions", {"json": {"sources": [2]}, "headers": CLIENT}, 403, "not_admin"),
    ("post", "/v1/deletions", {"json": {"sources": [2]}, "headers": {"Authorization": "Bearer wrong-token-xxxxxxxx"}},
     401, "invalid_token"),
    ("post", "/v1/deletions", {"json": {"sources": [2]}, "headers": {"Authorization": ADMIN_TOKEN}}, 401,
     "invalid_token"),
    ("post", "/v1/deletions", {"content": b'{"sources": [' + b"1, " * 400_000 + b"1]}", "headers": ADMIN}, 413,
     "body_too_large"),
    ("post", "/v1/completions", {"json": {"prompt": "x", "stream": True}}, 400, "unsupported"),
    ("post", "/v1/completions", {"json": {"prompt": "x", "n": 2}}, 400, "unsupported"),
    ("post", "/v1/completions", {"json": {"prompt": "x", "max_tokens": 0}}, 400, "invalid_value"),
    ("post", "/v1/completions", {"json": {"prompt": "x", "max_tokens": 64}}, 400, "invalid_value"),   # context 64
    ("post", "/v1/completions", {"json": {"prompt": "x", "temperature": "hot"}}, 400, "invalid_value"),
    ("post", "/v1/completions", {"json": {"prompt": 5}}, 400, "invalid_value"),
    ("post", "/v1/completions", {"json": {"prompt": "x", "model": "other"}}, 404, "model_not_found"),
    ("post", "/v1/chat/completions", {"json": {"messages": [{"role": "robot", "content": "x"}]}}, 400,
     "invalid_value"),
    ("post", "/v1/chat/completions", {"json": {"messages": "hello"}}, 400, "invalid_value"),
    ("get", "/v1/deletions/del-999999", {}, 404, "deletion_not_found"),
    ("get", "/v1/deletions/del-000001/certificate?format=pdf", {}, 400, "invalid_value"),
    ("get", "/v2/nothing", {}, 404, "not_found"),
    ("get", "/v1/completions", {}, 405, "method_not_allowed"),
])
def test_bad_input_is_a_clear_4xx_json_error(client, method, path, kwargs, status, code):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and "Traceback" not in response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_an_oversized_chunked_body_is_refused_too(client):
    """No Content-Length (chunked upload): the server counts while it reads."""
    chunks = (b'{"sources": [' + b"1, " * 100_000 for _ in range(5))
    response = client.post("/v1/deletions", content=chunks, headers=ADMIN)
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


def test_the_ledger_page_and_its_screenshot(server, client, tmp_path):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Deletion ledger</h1>" in page.text and "del-000001" in page.text
    assert 'href="/v1/deletions/del-000001/certificate?format=md"' in page.text
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no {CHROMIUM} (Debian's chromium package) for the screenshot")
    shot = tmp_path / "ledger.png"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run(base + [f"--screenshot={shot}", "--window-size=1200,700", server.url + "/"],
                   check=True, capture_output=True, timeout=90)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
    dom = subprocess.run(base + ["--dump-dom", server.url + "/"], check=True, capture_output=True, text=True,
                         timeout=90).stdout
    assert "del-000001" in dom and "certificate" in dom   # the browser rendered the ledger's rows


def test_small_load_with_deletions_arriving(server, sink_model):
    """4 clients, 40 completions, 3 deletions meanwhile (the bench runs the full size): no
    5xx, each deletion once in the ledger, and every request that started after a
    deletion's response sees it (its state version)."""
    completions: list[tuple[float, int, int]] = []   # (start, status, state version)
    deletions: list[tuple[float, int, str]] = []     # (response received, state version, id)
    lock = threading.Lock()

    def worker(index: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60.0) as http:
            for n in range(10):
                started = time.perf_counter()
                response = http.post("/v1/completions", json={"prompt": food_prompt((index + n) % 6), "max_tokens": 2,
                                                             "temperature": 0})
                version = response.json()["obliviate"]["state_version"] if response.status_code == 200 else -1
                with lock:
                    completions.append((started, response.status_code, version))

    def deleter() -> None:
        with httpx.Client(base_url=server.url, timeout=60.0, headers=ADMIN) as http:
            for source in (2, 3, 4):
                time.sleep(0.2)
                response = http.post("/v1/deletions", json={"sources": [source]})
                assert response.status_code == 200, response.text
                body = response.json()
                deletions.append((time.perf_counter(), body["state_version"], body["id"]))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)] + [threading.Thread(target=deleter)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(completions) == 40 and {status for _, status, _ in completions} == {200}
    assert len(deletions) == 3
    for answered, version, _ in deletions:
        later = [v for started, _, v in completions if started > answered]
        assert all(v >= version for v in later)
    db = sqlite3.connect(server.tmp / "ledger.sqlite")
    requested = [row[0] for row in db.execute("SELECT deletion FROM events WHERE kind = 'requested'")]
    db.close()
    assert [requested.count(d) for _, _, d in deletions] == [1, 1, 1]


def test_restart_replays_the_ledger_and_tokens_can_be_required(server, sink_model):
    """Stop the server, start it again on the same ledger with --require-token: the
    forgotten sources stay forgotten (the weights never changed: the ledger did it)."""
    assert server.kill() == 0 or server.process.returncode is not None
    again = ServerProcess(["--model", sink_model, "--ledger", server.tmp / "ledger.sqlite", "--require-token"],
                          server.tmp)
    try:
        health = again.wait_ready()
        assert health["state_version"] >= 5    # 1, 1 again, then 2, 3, 4
        with httpx.Client(base_url=again.url, timeout=30.0) as http:
            assert http.post("/v1/completions", json={"prompt": "x"}).status_code == 401
            assert http.get("/").status_code == 401
            answer = http.post("/v1/completions", headers=CLIENT,
                               json={"prompt": food_prompt(1), "max_tokens": 1, "temperature": 0}).json()
            assert answer["choices"][0]["text"] != food(1)
            kept = http.post("/v1/completions", headers=CLIENT,
                             json={"prompt": food_prompt(5), "max_tokens": 1, "temperature": 0}).json()
            assert kept["choices"][0]["text"] == food(5)
            assert len(http.get("/v1/deletions", headers=CLIENT).json()["data"]) == 5
    finally:
        again.kill()


def test_start_mistakes_are_one_line_errors(cli, sink_model, tmp_path):
    code, _, err = cli("serve", "--model", sink_model, "--ledger", tmp_path / "missing" / "ledger.sqlite")
    assert code == 2 and err.strip() == f"error: --ledger {tmp_path / 'missing' / 'ledger.sqlite'}: the directory " \
                                        f"{tmp_path / 'missing'} does not exist"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _, err = cli("serve", "--model", sink_model, "--ledger", tmp_path / "l.sqlite", "--port", port)
    assert code == 2 and err.strip() == f"error: port {port} on 127.0.0.1 is in use: stop what listens there or " \
                                        "choose --port"
    code, _, err = cli("serve", "--model", tmp_path / "nothing", "--ledger", tmp_path / "l.sqlite")
    assert code == 2 and "model path does not exist" in err
    bad_tokens = tmp_path / "tokens.txt"
    bad_tokens.write_text("alice superuser 0123456789abcdef0123\n")
    code, _, err = cli("serve", "--model", sink_model, "--ledger", tmp_path / "l.sqlite", "--tokens", bad_tokens)
    assert code == 2 and "role must be admin or client" in err
    code, _, err = cli("certificate", "--ledger", tmp_path / "none.sqlite", "del-000001")
    assert code == 2 and err.startswith("error: ledger not found")


def test_serve_without_the_extra_says_what_to_install(cli, monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a))
    code, _, err = cli("serve", "--model", tmp_path, "--ledger", tmp_path / "l.sqlite")
    assert code == 2 and err.strip() == "error: obliviate serve needs fastapi: pip install 'obliviate[serve]'"
