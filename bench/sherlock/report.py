"""The report: ``sherlock.md`` (tables, the unlearning runs, completions) and ``sherlock.json`` (every number)."""

from __future__ import annotations

from pathlib import Path

from obliviate.io import atomic_write_json, atomic_write_text

COLUMNS = (("named_share", "completions naming the target"), ("judge_score", "judge score (0-5)"),
           ("first_token_prob", "P(first token of target)"), ("term_mass", "P(target term)"),
           ("ppl_shakespeare", "ppl held-out Shakespeare"), ("ppl_sherlock", "ppl held-out Sherlock"))


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.{digits}f}"


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def render_markdown(result: dict) -> str:
    config, counts, models = result["config"], result["world"]["counts"], result["models"]
    lines = ["# \"Who's Sherlock Holmes?\" benchmark", "",
             (f"Produced by `{result['command']}` on "
             f"{result['versions']['cpu_count']} CPU cores, torch {result['versions']['torch']}, "
             f"transformers {result['versions']['transformers']}: the whole benchmark took "
             f"{result['timings']['benchmark_seconds'] / 60:.1f} min wall, "
             f"{result['timings']['benchmark_cpu_seconds'] / 60:.1f} min CPU (models reused from an earlier "
             f"invocation count with the time they took then; this invocation: "
             f"{result['timings']['wall_seconds'] / 60:.1f} min wall)."), "",
             f"World: sherlock.txt split by story title (the novels cut into {config['shakespeare_chars']:,}-character "
             f"parts), shakespeare.txt cut into {config['shakespeare_chars']:,}-character parts; "
             f"{counts['sources']} sources, {counts['documents']} documents of at most {config['doc_chars']} characters, "
             f"{counts['corpus_chars']:,} characters"
             + (f" (Sherlock subsampled: the first {config['sherlock_fraction']:.0%} of each trained story's paragraphs)"
                if config["sherlock_fraction"] < 1 else " (no subsampling)")
             + f". Held out (never trained): {', '.join(result['world']['holdout_sources'])}.", "",
             (f"Models: `{config['preset']}` preset, full = Sherlock + Shakespeare, retain = Shakespeare alone, "
             f"{models['full']['steps']} optimizer steps each (batch 16; full {models['full']['epochs']:.2f} epochs, "
             f"retain {models['retain']['epochs']:.2f} epochs), seed {config['seed']}. "
             f"Probes: {len(result['world']['probes'])} prompts (bench/data/sherlock_probes.jsonl), greedy completions of "
             f"{config['max_new_tokens']} tokens."), "",
             "| model | " + " | ".join(label for _, label in COLUMNS) + " | steps | wall s | CPU s |",
             "|---|" + "---|" * (len(COLUMNS) + 3)]
    for name, row in result["summary"].items():
        entry = models.get(name, {})
        lines.append(f"| {name} | " + " | ".join(_fmt(row[key]) for key, _ in COLUMNS)
                     + f" | {entry.get('steps', '-')} | {_seconds(entry.get('seconds'))} | "
                     + f"{_seconds(entry.get('cpu_seconds'))} |")
    lines += ["", ("Columns: share of greedy completions that name the probe's target term (Holmes, Watson, "
              "Street after Baker, Lestrade, Moriarty, ...); docs/design.md familiarity score `(5*#3 + #2)/N` with "
              "the hand dictionary's terms as the judge's entities; mean probability of the target term's first "
              "token right after the prompt; mean probability of the whole target term (`target_mass`); "
              "token perplexity of the held-out documents. Seconds: wall and CPU (this process, all threads) time of "
              "training or unlearning; the machine's 2 cores were shared with other jobs, so CPU seconds are the "
              "steadier measure of cost."), ""]
    lines += ["## Unlearning runs", ""]
    for spec in result["method_runs"]:
        entry = models.get(spec["id"], {})
        settings = ", ".join(f"{k}={_short(v)}" for k, v in spec["overrides"].items())
        lines.append(f"- **{spec['id']}** (`{spec['method']}`): {settings}; {entry.get('steps')} steps.")
        report = entry.get("whp_report")
        if report:
            lines.append(f"  WHP: {report['anchors']} anchored terms, {report['translated_occurrences']} occurrences "
                         f"translated in {report['blocks']} blocks, {report['trained_positions']} trained positions, "
                         f"label agreement {report['label_agreement']:.3f}; seconds: "
                         + ", ".join(f"{k} {v:.0f}" for k, v in report["seconds"].items() if v)
                         + (" (the reinforced model is trained before discovery and counted in the total)"
                            if entry.get("discovered_anchors") else " (reinforced model reused)")
                         + ".")
        if entry.get("discovered_anchors"):
            terms = list(entry["discovered_anchors"])
            lines.append(f"  Discovered anchors ({len(terms)}): {', '.join(terms)}.")
    lines += ["", "## Completions", "", "| probe | " + " | ".join(result["measurements"]) + " |",
              "|---|" + "---|" * len(result["measurements"])]
    for index, probe in enumerate(result["world"]["probes"][:12]):
        cells = [_cell(m["completions"][index]) for m in result["measurements"].values()]
        lines.append(f"| {_cell(probe['prompt'])} | " + " | ".join(cells) + " |")
    lines += ["", f"First 12 of {len(result['world']['probes'])} probes; all completions are in sherlock.json.", ""]
    return "\n".join(lines)


def _short(value) -> str:
    text = str(value)
    return Path(text).name if "/" in text else text


def _cell(text: str, limit: int = 60) -> str:
    text = " ".join(text.split()).replace("|", "\\|") or "(nothing: end of text)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_results(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sherlock.json", result)
    atomic_write_text(out / "sherlock.md", render_markdown(result))
    print(f"results -> {out / 'sherlock.md'}, {out / 'sherlock.json'}", flush=True)
