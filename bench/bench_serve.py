"""Load test of ``obliviate serve`` on a sink model: completion latency with and without
deletions arriving, and the end-to-end latency of a switch deletion.

    python bench/bench_serve.py [--model SINK_DIR --world WORLD] [--out docs/results/serve]

Without ``--model`` it trains the micro world's sink model once (cached under
``--cache``). Loopback only: one server process on 127.0.0.1 (``OMP_NUM_THREADS`` =
``--threads``), ``--clients`` client threads (one httpx connection each).

1. warm-up, then ``--completions`` greedy completions (``--max-tokens`` new tokens) of the
   world's questions, no deletions: the baseline latencies;
2. the same completions again while ``--deletions`` switch deletions (one source each,
   by name) arrive at even intervals.

Checks (the run fails if one does not hold): no 5xx; every deletion in the ledger exactly
once, done; every completion that started after a deletion's response ran on a state
that includes it (its ``state_version``); and each forgotten source's question, asked
right after its deletion's response, reports that state. Figures: completion latency
p50/p99 per phase, deletion latency (request sent -> response received) p50/p99,
throughput. Written to OUT/bench_serve.json and OUT/bench_serve.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "bench-admin-" + "0" * 20


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "max": max(values), "mean": sum(values) / len(values)}


def build_sink_model(cache: Path) -> tuple[Path, Path]:
    """The micro world's sink model (trained once, then reused from ``cache``)."""
    from obliviate.world.generator import generate_world
    from obliviate.workflows.train import train_run

    world = cache / "world"
    if not (world / "world.json").is_file():
        generate_world("micro", 0, world)
    run = cache / "run"
    model = run / "models" / "full-sinks"
    if not (model / "config.json").is_file():
        print("training the micro sink model (once) ...", file=sys.stderr)
        train_run(world, run, forget="forget10", arch="sinks", which=("full",), progress=False)
    return model, world


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: Path, world: Path, workdir: Path, threads: int) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    (workdir / "tokens.txt").write_text(f"bench admin {ADMIN_TOKEN}\n")
    ledger = workdir / "ledger.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT / "src")}
    log = open(workdir / "server.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "obliviate.cli", "serve", "--model", str(model), "--world",
                                str(world), "--ledger", str(ledger), "--tokens", str(workdir / "tokens.txt"),
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {(workdir / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return process, url, ledger
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not come up")


def run_completions(url: str, prompts: list[str], clients: int, total: int, max_tokens: int,
                    records: list, stop: threading.Event | None = None) -> float:
    """``total`` completions over ``clients`` threads; appends (start, end, status, version)."""
    lock = threading.Lock()
    counter = iter(range(total))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120.0) as http:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                started = time.perf_counter()
                response = http.post("/v1/completions", json={"model": None, "prompt": prompts[index % len(prompts)],
                                                             "max_tokens": max_tokens, "temperature": 0})
                ended = time.perf_counter()
                version = response.json().get("obliviate", {}).get("state_version", -1) \
                    if response.status_code == 200 else -1
                with lock:
                    records.append((started, ended, response.status_code, version))

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def ledger_screenshot(url: str, workdir: Path, out: Path) -> str | None:
    """The ledger page in headless Chromium (Debian's package), if it is installed."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.is_file():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--user-data-dir={workdir / 'chromium'}", f"--screenshot={out}", "--window-size=1280,900",
                    url + "/"], check=True, capture_output=True, timeout=120)
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a sink model directory (default: the micro world's, trained once)")
    parser.add_argument("--world", type=Path, help="its world (default: the micro world)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "obliviate-bench-serve")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--completions", type=int, default=400)
    parser.add_argument("--deletions", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the server")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "serve")
    args = parser.parse_args()

    from obliviate.data.format import qa_prompt
    from obliviate.world.loader import load_world

    if (args.model is None) != (args.world is None):
        raise SystemExit("give both --model and --world, or neither")
    args.cache.mkdir(parents=True, exist_ok=True)
    model, world_dir = (args.model, args.world) if args.model else build_sink_model(args.cache)
    world = load_world(world_dir)
    trained = [s for s in world.sources if s.get("trained", True)]
    if len(trained) < args.deletions:
        raise SystemExit(f"the world has {len(trained)} trained sources, fewer than --deletions {args.deletions}")
    doomed = trained[:args.deletions]
    prompts = [qa_prompt(q["question"]) for q in world.qa]

    workdir = Path(tempfile.mkdtemp(prefix="bench-serve-", dir=args.cache))
    process, url, ledger = start_server(model, world_dir, workdir, args.threads)
    try:
        warm: list = []
        run_completions(url, prompts, args.clients, 4 * args.clients, args.max_tokens, warm)
        baseline: list = []
        baseline_seconds = run_completions(url, prompts, args.clients, args.completions, args.max_tokens, baseline)

        def first_question(source_id: int):
            return next((q for q in world.qa if q["source_id"] == source_id), None)

        def answer(http: httpx.Client, question: dict) -> httpx.Response:
            return http.post("/v1/completions", json={"prompt": qa_prompt(question["question"]),
                                                       "max_tokens": args.max_tokens, "temperature": 0})

        # each doomed source's question, answered before any deletion
        with httpx.Client(base_url=url, timeout=60.0) as http:
            before = {s["source_id"]: answer(http, q).json()["choices"][0]["text"]
                      for s in doomed if (q := first_question(s["source_id"])) is not None}
        deletions: list[dict] = []
        probes: list[dict] = []
        interval = baseline_seconds / (args.deletions + 1)

        def deleter() -> None:
            with httpx.Client(base_url=url, timeout=60.0, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
                for source in doomed:
                    time.sleep(interval)
                    sent = time.perf_counter()
                    response = http.post("/v1/deletions", json={"sources": [source["name"]]})
                    received = time.perf_counter()
                    body = response.json()
                    deletions.append({"source": source["source_id"], "status": response.status_code, "sent": sent,
                                      "received": received, "id": body.get("id"),
                                      "state_version": body.get("state_version"), "server_ms": body.get("request_ms")})
                    # the forgotten source's own question, asked right after the response
                    question = first_question(source["source_id"])
                    if question is not None:
                        probe = answer(http, question)
                        probes.append({"source": source["source_id"], "status": probe.status_code,
                                       "state_version": probe.json().get("obliviate", {}).get("state_version"),
                                       "needed": body.get("state_version"),
                                       "changed": probe.json()["choices"][0]["text"] != before[source["source_id"]]})

        loaded: list = []
        thread = threading.Thread(target=deleter)
        thread.start()
        loaded_seconds = run_completions(url, prompts, args.clients, args.completions, args.max_tokens, loaded)
        thread.join()
        health = httpx.get(url + "/healthz").json()
        screenshot = ledger_screenshot(url, workdir, args.out / "ledger-page.png")
    finally:
        process.terminate()
        process.wait(timeout=30)

    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    requested = [row[0] for row in db.execute("SELECT deletion FROM events WHERE kind = 'requested'")]
    done = [row[0] for row in db.execute("SELECT deletion FROM events WHERE kind = 'status' AND "
                                         "json_extract(data, '$.status') = 'done'")]
    db.close()

    statuses = [r[2] for r in baseline + loaded] + [d["status"] for d in deletions] + [p["status"] for p in probes]
    stale = sum(1 for d in deletions for started, _, _, version in loaded
                if started > d["received"] and version < d["state_version"])
    checks = {
        "no_5xx": all(s < 500 for s in statuses),
        "all_200": all(s == 200 for s in statuses),
        "every_deletion_in_ledger_once": sorted(requested) == sorted(d["id"] for d in deletions)
        and len(set(requested)) == len(requested) == args.deletions and sorted(done) == sorted(requested),
        "requests_after_a_deletion_see_it": stale == 0,
        "probes_see_their_deletion": all(p["state_version"] >= p["needed"] for p in probes),
        "final_state_version": health["state_version"] == args.deletions,
    }
    deletion_ms = [1e3 * (d["received"] - d["sent"]) for d in deletions]
    figures = {
        "completion_latency_ms": {
            "without_deletions": summary([1e3 * (e - s) for s, e, _, _ in baseline]),
            "with_deletions": summary([1e3 * (e - s) for s, e, _, _ in loaded]),
        },
        "completions_per_second": {"without_deletions": args.completions / baseline_seconds,
                                   "with_deletions": args.completions / loaded_seconds},
        "switch_deletion_latency_ms": {"end_to_end": summary(deletion_ms),
                                       "server_side": summary([d["server_ms"] for d in deletions])},
        "requests_started_after_a_deletion": sum(1 for d in deletions for s, _, _, _ in loaded if s > d["received"]),
        "stale_requests": stale,
        # a forgotten source's first question, asked right after its deletion: a different answer than before
        "forgotten_answers_changed": f"{sum(p['changed'] for p in probes)}/{len(probes)}",
    }
    result = {
        "bench": "serve",
        "command": "python bench/bench_serve.py " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "server_omp_threads": args.threads},
        "workload": {"model": str(model), "world": str(world_dir), "clients": args.clients,
                     "completions_per_phase": args.completions, "deletions": args.deletions,
                     "max_tokens": args.max_tokens, "greedy": True, "prompts": len(prompts)},
        "figures": figures,
        "checks": checks,
        "ledger_page_screenshot": None if screenshot is None else Path(screenshot).name,
        "aim": {"switch_deletion_p99_ms": 50.0,
                "met": figures["switch_deletion_latency_ms"]["end_to_end"]["p99"] <= 50.0},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_serve.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "bench_serve.md").write_text(markdown(result))
    print(markdown(result))
    if not all(checks.values()):
        raise SystemExit(f"checks failed: {[k for k, v in checks.items() if not v]}")


def markdown(result: dict) -> str:
    f, w = result["figures"], result["workload"]
    c_without, c_with = f["completion_latency_ms"]["without_deletions"], f["completion_latency_ms"]["with_deletions"]
    d = f["switch_deletion_latency_ms"]["end_to_end"]
    s = f["switch_deletion_latency_ms"]["server_side"]
    lines = [
        "# `obliviate serve` load test", "",
        f"`{result['command']}` on {result['machine']['platform']} ({result['machine']['cpus']} CPUs, server "
        f"OMP_NUM_THREADS={result['machine']['server_omp_threads']}); loopback only.", "",
        f"Sink model `{w['model']}`; {w['clients']} concurrent clients, {w['completions_per_phase']} greedy "
        f"completions of {w['max_tokens']} tokens per phase; {w['deletions']} switch deletions (one source each, "
        "by name) arriving during the second phase.", "",
        "| | p50 ms | p90 ms | p99 ms | max ms | completions/s |", "|---|---|---|---|---|---|",
        f"| completion, no deletions | {c_without['p50']:.1f} | {c_without['p90']:.1f} | {c_without['p99']:.1f} | "
        f"{c_without['max']:.1f} | {f['completions_per_second']['without_deletions']:.1f} |",
        f"| completion, deletions arriving | {c_with['p50']:.1f} | {c_with['p90']:.1f} | {c_with['p99']:.1f} | "
        f"{c_with['max']:.1f} | {f['completions_per_second']['with_deletions']:.1f} |",
        f"| switch deletion, end to end | {d['p50']:.1f} | {d['p90']:.1f} | {d['p99']:.1f} | {d['max']:.1f} | |",
        f"| switch deletion, inside the server | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | "
        f"{s['max']:.1f} | |", "",
        f"Aim: switch deletion p99 <= 50 ms: {'met' if result['aim']['met'] else 'NOT met'}.", "",
        "Checks: " + ", ".join(f"{k} {'yes' if v is True else v}" for k, v in result["checks"].items()) + "; "
        f"{f['requests_started_after_a_deletion']} (completion, deletion) pairs where the completion started after "
        f"the deletion's response, {f['stale_requests']} of them on a state without it. A forgotten source's "
        f"first question, asked right after its deletion's response, got another answer than before the "
        f"deletions in {f['forgotten_answers_changed']} cases.", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
