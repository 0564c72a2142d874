"""A certificate per deletion: what was deleted, when, by whom, how, and the evidence.

Built from the deletion's ledger record alone (``Deletion.to_json``), so ``obliviate
certificate`` and ``GET /v1/deletions/{id}/certificate`` give the same document, and a
certificate can be re-issued from the ledger file at any time. JSON for machines,
markdown for people.
"""

from __future__ import annotations

from typing import Any

from obliviate import __version__

CERTIFICATE_VERSION = 1
# the evaluation summary keys a certificate shows (docs/design.md, "Evaluation JSON")
SUMMARY_KEYS = ("forget_quality", "model_utility", "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE",
                "forget_unique_accuracy", "retain_unique_accuracy", "privleak", "mia_min_k",
                "exact_memorization", "extraction_strength")
WHAT_SWITCH_MEANS = ("the sources' sinks are switched off in the served model: every request that started after "
                     "the deletion's response runs without them; the weights are unchanged (access control while "
                     "serving). For released weights, `obliviate purge` exports the model with those sinks removed "
                     "(docs/native-threat-model.md).")
WHAT_JOB_MEANS = ("the served model was replaced by a model the method unlearned the sources from; the old model "
                  "served every request until the swap.")


def _served_model(server_events: list[dict]) -> dict:
    starts = [row["data"] for row in server_events if row["data"].get("event") == "start"]
    return starts[0] if starts else {}


def build_certificate(record: dict, ledger_path: str, server_events: list[dict]) -> dict[str, Any]:
    """The certificate of one deletion record (a ``Deletion.to_json()``)."""
    start = _served_model(server_events)
    summary = record.get("summary") or {}
    done = [entry for entry in record.get("history", []) if entry.get("status") == "done"]
    certified = record["status"] == "done"
    return {
        "certificate_version": CERTIFICATE_VERSION,
        "deletion": record["id"],
        "certified": certified,
        "status": record["status"],
        "what": {"sources": record["sources"], "source_names": record["source_names"],
                 "requested_as": record["selectors"]},
        "when": {"requested_at": record["requested_at"], "completed_at": done[-1]["time"] if done else None,
                 "history": [{"time": h["time"], "status": h["status"], "attempt": h.get("attempt"),
                              **({"reason": h["reason"]} if h.get("reason") else {})}
                             for h in record.get("history", [])]},
        "by": record["requester"],
        "method": record["method"],
        "mode": record["mode"],
        "meaning": WHAT_SWITCH_MEANS if record["mode"] == "switch" else WHAT_JOB_MEANS,
        "model": {"base_model": start.get("base_model"), "base_hash": start.get("base_hash"),
                  "hash_before": record.get("model_hash_before"), "hash_after": record.get("model_hash_after"),
                  "state_hash_before": record.get("state_hash_before"),
                  "state_hash_after": record.get("state_hash_after"),
                  "model_dir_after": record.get("model_dir_after"),
                  "forgotten_after": record.get("forgotten_after")},
        "evaluation": {"reference": record.get("reference"), "reference_exact": record.get("reference_exact"),
                       "eval_json": record.get("eval"),
                       "summary": {k: summary[k] for k in SUMMARY_KEYS if k in summary}} if summary else None,
        "attacks": record.get("attacks") or [],
        "attacks_json": record.get("attacks_json"),
        "timings": record.get("timings"),
        "ledger": ledger_path,
        "issued_by": f"obliviate {__version__}",
    }


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def render_markdown(cert: dict) -> str:
    what, model = cert["what"], cert["model"]
    names = [f"{s} ({n})" if n else str(s) for s, n in zip(what["sources"], what["source_names"])]
    state = "certified: the deletion is complete" if cert["certified"] else \
        f"NOT certified: the deletion is {cert['status']}"
    lines = [f"# Deletion certificate {cert['deletion']}", "", f"**{state}.**", "",
             f"- **What**: source(s) {', '.join(names)} (requested as {', '.join(map(str, what['requested_as']))})",
             f"- **When**: requested {cert['when']['requested_at']}, completed {_value(cert['when']['completed_at'])}",
             f"- **By**: {cert['by']}",
             f"- **Method**: {cert['method']} ({'sink switch' if cert['mode'] == 'switch' else 'background job'})",
             f"- **Meaning**: {cert['meaning']}", "",
             "## Model", "",
             "| | hash |", "|---|---|",
             f"| base model `{_value(model['base_model'])}` | `{_value(model['base_hash'])}` |",
             f"| served before | `{_value(model['hash_before'])}` |",
             f"| served after | `{_value(model['hash_after'])}` |"]
    if model.get("state_hash_after"):
        lines.append(f"| switch state before / after | `{_value(model['state_hash_before'])}` / "
                     f"`{_value(model['state_hash_after'])}` |")
    if model.get("model_dir_after"):
        lines += ["", f"New model directory: `{model['model_dir_after']}`"]
    if model.get("forgotten_after") is not None:
        lines += ["", f"Switched-off sources after this deletion: {model['forgotten_after']}"]
    lines += ["", "## Evidence", ""]
    evaluation = cert.get("evaluation")
    if evaluation:
        reference = evaluation["reference"]
        lines += [f"Evaluated against the retain model `{reference}`." if reference else
                  "Evaluated without a retain model (no forget quality).", ""]
        if evaluation.get("reference_exact") is False:
            lines += ["The retain model was not trained without exactly the deleted sources: forget quality "
                      "compares with a near counterfactual, not the exact one.", ""]
        elif evaluation.get("reference_exact"):
            lines += ["The retain model was trained without exactly the deleted sources (the exact "
                      "counterfactual).", ""]
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_value(v)} |" for k, v in evaluation["summary"].items()]
    else:
        lines.append("No evaluation was recorded for this deletion.")
    lines += ["", "## Attacks", ""]
    if cert["attacks"]:
        lines += ["| attack | measure | value |", "|---|---|---|"]
        for attack in cert["attacks"]:
            results = attack.get("result") or {}
            lines += [f"| {attack.get('name')} | {key} | {_value(value)} |" for key, value in results.items()]
            if not results:
                lines.append(f"| {attack.get('name')} | - | - |")
        if cert.get("attacks_json"):
            lines += ["", f"Full results: `{cert['attacks_json']}`."]
    else:
        lines.append("No attack was run for this deletion (serve with --attack NAME, or run `obliviate attack` "
                     "on the served model).")
    lines += ["", "## History", "", "| time | status | attempt | note |", "|---|---|---|---|"]
    lines += [f"| {h['time']} | {h['status']} | {_value(h.get('attempt'))} | {h.get('reason', '')} |"
              for h in cert["when"]["history"]]
    lines += ["", f"Ledger `{cert['ledger']}`; issued by {cert['issued_by']}.", ""]
    return "\n".join(lines)
