"""The hash-only part of native unlearning at scale (issue 18 item 4): sink sets of 10^3 .. 10^7
source ids, computed by the keyed hash with no table.

    python bench/bench_sink_hash_scale.py [--preset tiny] [--out docs/results/sink-scale]

For each number of sources N it measures, on the sink layout of a model preset (sink units
per layer x sink layers, ``p_mem`` of the sink config's default):

- memory: what the switch stores (the forgotten ids, 8 bytes each; no per-source table) and
  the time to compute one source's sinks, and the ``all``-mode gate with 10 sources forgotten;
- set sizes and pairwise overlaps of sources drawn across the whole id range, against the
  binomial chance values (size ~ Bin(U, p), overlap ~ Bin(U, p^2));
- per-unit load (how many of the N sources own each unit: ~ Bin(N, p)), exhaustively up to
  ``--exhaustive`` sources (a chi-square test of uniformity), sampled above;
- collateral of deletions: the share of a surviving source's sinks that F forgotten sources
  also own (they are switched off in ``all`` mode), against 1 - (1 - p)^F.

Writes ``scale.json`` and ``scale.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
from scipy import stats

from obliviate.models.presets import MODEL_PRESETS
from obliviate.train.trainer import SinkKnobs
from obliviate.models.sink_hash import sink_membership

SCALES = (10**3, 10**4, 10**5, 10**6, 10**7)


def layout(preset: str, p_gen: float) -> tuple[int, int]:
    """(sink units per layer, sink layers) of a preset with every layer sinked."""
    spec = MODEL_PRESETS[preset]
    n_backbone = int(round(p_gen * spec.intermediate_size))
    return spec.intermediate_size - n_backbone, spec.num_hidden_layers


def membership(hash_key: int, ids: torch.Tensor, units_per_layer: int, layers: int, p_mem: float,
               intermediate: int) -> torch.Tensor:
    """Bool [len(ids), units_per_layer * layers]: every sink layer's sinks, as the model lays them out
    (layer l's sinks are the last units of its MLP; global unit index l * intermediate + offset)."""
    first = intermediate - units_per_layer
    return torch.cat([sink_membership(hash_key, ids, layer * intermediate + first, units_per_layer, p_mem)
                      for layer in range(layers)], dim=1)


def unit_load(n_sources: int, hash_key: int, units: int, layers: int, p_mem: float, intermediate: int,
              chunk: int = 50_000, sample: int | None = None) -> dict:
    """How many sources own each unit, over ids 0..N-1 (or ``sample`` ids drawn from that range)."""
    generator = torch.Generator().manual_seed(1)
    ids = (torch.arange(n_sources) if sample is None
           else torch.randint(0, n_sources, (sample,), generator=generator))
    counts = torch.zeros(units * layers, dtype=torch.int64)
    for start in range(0, len(ids), chunk):
        counts += membership(hash_key, ids[start:start + chunk], units, layers, p_mem, intermediate).sum(0)
    n = len(ids)
    expected = n * p_mem
    chi2 = float((((counts - expected) ** 2) / (expected * (1 - p_mem))).sum())
    dof = counts.numel()
    z = (counts.double() - expected) / math.sqrt(n * p_mem * (1 - p_mem))
    return {"sources_counted": n, "exhaustive": sample is None, "mean": float(counts.double().mean()),
            "expected": expected, "max_abs_z": float(z.abs().max()),
            "chi2": chi2, "dof": dof, "chi2_p": float(stats.chi2.sf(chi2, dof))}


def pair_statistics(n_sources: int, hash_key: int, units: int, layers: int, p_mem: float, intermediate: int,
                    pairs: int = 20_000) -> dict:
    """Set sizes and overlaps of ``pairs`` random distinct source pairs drawn from 0..N-1."""
    generator = torch.Generator().manual_seed(2)
    a = torch.randint(0, n_sources, (pairs,), generator=generator)
    b = torch.randint(0, n_sources, (pairs,), generator=generator)
    keep = a != b
    a, b = a[keep], b[keep]
    sets_a = membership(hash_key, a, units, layers, p_mem, intermediate)
    sets_b = membership(hash_key, b, units, layers, p_mem, intermediate)
    size = sets_a.sum(1).double()
    overlap = (sets_a & sets_b).sum(1).double()
    u = units * layers
    q = p_mem * p_mem
    return {"pairs": int(len(a)),
            "size_mean": float(size.mean()), "size_var": float(size.var()),
            "size_expected": u * p_mem, "size_var_expected": u * p_mem * (1 - p_mem),
            "overlap_mean": float(overlap.mean()), "overlap_var": float(overlap.var()),
            "overlap_expected": u * q, "overlap_var_expected": u * q * (1 - q),
            "overlap_mean_z": float((overlap.mean() - u * q) / math.sqrt(u * q * (1 - q) / len(a)))}


def collateral(n_sources: int, hash_key: int, units: int, layers: int, p_mem: float, intermediate: int,
               forgotten_counts=(1, 10, 100), survivors: int = 2_000) -> list[dict]:
    """Share of a surviving source's sinks also owned by F forgotten sources (off in ``all`` mode)."""
    generator = torch.Generator().manual_seed(3)
    rows = []
    for f in forgotten_counts:
        forgotten = torch.randperm(n_sources, generator=generator)[:f] if n_sources <= 10**6 else \
            torch.randint(0, n_sources, (f,), generator=generator)
        off = membership(hash_key, forgotten, units, layers, p_mem, intermediate).any(0)
        alive = torch.randint(0, n_sources, (survivors,), generator=generator)
        alive = alive[~torch.isin(alive, forgotten)]
        sets = membership(hash_key, alive, units, layers, p_mem, intermediate)
        lost = (sets & off).sum(1).double() / sets.sum(1).clamp(min=1).double()
        rows.append({"forgotten": f, "lost_share_mean": float(lost.mean()),
                     "expected": 1 - (1 - p_mem) ** f, "units_off_share": float(off.double().mean())})
    return rows


def timings(n_sources: int, hash_key: int, units: int, layers: int, p_mem: float, intermediate: int) -> dict:
    """Seconds to compute one source's sinks (median of 200, ids across the range) and the
    ``all``-mode off-mask of 10 forgotten sources."""
    generator = torch.Generator().manual_seed(4)
    ids = torch.randint(0, n_sources, (200,), generator=generator)
    times = []
    for sid in ids:
        start = time.perf_counter()
        membership(hash_key, sid.reshape(1), units, layers, p_mem, intermediate)
        times.append(time.perf_counter() - start)
    forgotten = ids[:10]
    start = time.perf_counter()
    membership(hash_key, forgotten, units, layers, p_mem, intermediate).any(0)
    return {"one_source_s": sorted(times)[len(times) // 2], "switch_10_s": time.perf_counter() - start,
            "switch_state_bytes_10_forgotten": 8 * 10, "table_bytes": 0}


def markdown(result: dict) -> str:
    s = result["setup"]
    lines = [f"# Sink sets by keyed hash at scale ({s['preset']} layout: {s['units_per_layer']} sinks x "
             f"{s['layers']} layers = {s['units']} units, p_mem {s['p_mem']})", "",
             "Command: `python bench/bench_sink_hash_scale.py`. No table is stored: a source's sinks are "
             "recomputed from its id, so memory does not grow with the number of sources.", "",
             "| sources | one source's sinks (ms) | switch of 10 (ms) | set size (chance) | pair overlap (chance) "
             "| overlap z | unit load max abs z | load chi-square p | lost share F=1 / 10 / 100 (chance) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in result["scales"]:
        t, pair, load = row["timings"], row["pairs"], row["unit_load"]
        lost = " / ".join(f"{c['lost_share_mean']:.3f}" for c in row["collateral"])
        chance = " / ".join(f"{c['expected']:.3f}" for c in row["collateral"])
        sampled = "" if load["exhaustive"] else f" (sample of {load['sources_counted']:,})"
        lines.append(f"| {row['sources']:,} | {1e3 * t['one_source_s']:.3f} | {1e3 * t['switch_10_s']:.3f} | "
                     f"{pair['size_mean']:.2f} ({pair['size_expected']:.1f}) | {pair['overlap_mean']:.3f} "
                     f"({pair['overlap_expected']:.2f}) | {pair['overlap_mean_z']:+.2f} | {load['max_abs_z']:.2f}"
                     f"{sampled} | {load['chi2_p']:.3f} | {lost} ({chance}) |")
    lines += ["", "Reading it: set sizes and overlaps match the binomial chance values at every scale (|z| < 3), "
              "and every unit is owned by its expected share of sources, so sources spread evenly however many "
              "there are. The price is in the last column: a forgotten source's sinks are shared with p_mem of "
              "every other source's, so `all` mode loses about 1 - (1 - p_mem)^F of each survivor's sinks after F "
              "deletions, and a routed survivor keeps running units a forgotten source also trained (their pair "
              "overlap). Timings: one CPU thread of this machine; they do not depend on the number of sources."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=list(MODEL_PRESETS))
    parser.add_argument("--hash-key", type=int, default=0)
    parser.add_argument("--exhaustive", type=int, default=10**6, help="count unit load over every id up to this N")
    parser.add_argument("--out", type=Path, default=Path("docs/results/sink-scale"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    defaults = SinkKnobs()   # the training defaults of `obliviate train --arch sinks`
    units, layers = layout(args.preset, defaults.p_gen)
    intermediate = MODEL_PRESETS[args.preset].intermediate_size
    p_mem = defaults.p_mem
    result = {"setup": {"preset": args.preset, "units_per_layer": units, "layers": layers, "units": units * layers,
                        "p_mem": p_mem, "hash_key": args.hash_key, "torch": torch.__version__,
                        "machine": platform.processor() or platform.machine()},
              "scales": []}
    for n in SCALES:
        started = time.perf_counter()
        sample = None if n <= args.exhaustive else args.exhaustive
        common = (n, args.hash_key, units, layers, p_mem, intermediate)
        row = {"sources": n, "timings": timings(*common), "pairs": pair_statistics(*common),
               "unit_load": unit_load(*common, sample=sample), "collateral": collateral(*common)}
        row["seconds"] = round(time.perf_counter() - started, 1)
        print(f"{n:>10,} sources: {row['seconds']} s", flush=True)
        result["scales"].append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "scale.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
