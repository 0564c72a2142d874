"""A small copy of muse-bench/MUSE-News in the dataset repository's own layout: one parquet
file per config and split (``CONFIG/SPLIT-00000-of-00001.parquet``, as `push_to_hub` writes
them) and a README.md whose card maps each config's splits to those files
(``configs: - config_name: raw  data_files: - split: forget  path: raw/forget-*``), so
``datasets.load_dataset(DIR, name=...)`` reads it exactly as it reads the hub's copy.

raw: 6 forget, 4 retain1, 4 retain2, 6 holdout articles (News: 889 / 1777 / 1778 / 3043);
knowmem: one forget_qa per forget article, one retain_qa per retain2 article, 2 ICL rows each
(News: 100 + 10 each); verbmem: the start of each forget article and its continuation
(News: 100); privleak: 3 texts per split (News: 100), not read by the world.
"""

from __future__ import annotations

from pathlib import Path

N_RAW = {"forget": 6, "retain1": 4, "retain2": 4, "holdout": 6}
TOWNS = ["Lorvale", "Quenmir", "Dastrel", "Ostavik", "Pellinor", "Haruvan", "Zemgrad", "Tolmere", "Ivrasca",
         "Brenmoor", "Calderis", "Fenwarth", "Mirokan", "Sarvelle", "Undrath", "Velmora", "Yastrin", "Korrindel",
         "Ambrosk", "Nythria"]
THINGS = ["bridge", "market", "harbour", "library", "festival", "railway", "council", "school"]


def _index(split: str, k: int) -> int:
    """Article k of the split's place among all 20 articles: each has its own town."""
    return sum(n for name, n in list(N_RAW.items())[:list(N_RAW).index(split)]) + k


def article(split: str, k: int) -> str:
    """A short news article: its own town (and thing) per (split, k), shared wording."""
    index = _index(split, k)
    town, thing = TOWNS[index % len(TOWNS)], THINGS[index % len(THINGS)]
    mayor = f"{TOWNS[(index + 7) % len(TOWNS)]}son"
    return (f"The new {thing} of {town} opened on Monday after three years of work.\n\n"
            f"Mayor {mayor} said the {thing} would bring visitors to {town} and jobs to the valley. "
            f"Local people gathered by the river to watch the first day.\n\n"
            f"The {thing} cost more than planned, and the council of {town} will meet again in spring.")


def _knowmem(split: str, ks: range) -> list[dict]:
    rows = []
    for k in ks:
        index = _index(split, k)
        town, thing = TOWNS[index % len(TOWNS)], THINGS[index % len(THINGS)]
        rows.append({"question": f"Which town opened a new {thing} on Monday?", "answer": town})
    return rows


def configs() -> dict[str, dict[str, list[dict]]]:
    """config -> split -> rows, with MUSE-News's configs, splits and columns."""
    raw = {split: [{"text": article(split, k)} for k in range(n)] for split, n in N_RAW.items()}
    verbmem = []
    for row in raw["forget"]:
        cut = row["text"].index(" opened")
        verbmem.append({"prompt": row["text"][:cut], "gt": row["text"][cut:].lstrip()})
    return {
        "raw": raw,
        "verbmem": {"forget": verbmem},
        "knowmem": {"forget_qa": _knowmem("forget", range(N_RAW["forget"])),
                    "forget_qa_icl": _knowmem("retain1", range(2)),
                    "retain_qa": _knowmem("retain2", range(N_RAW["retain2"])),
                    "retain_qa_icl": _knowmem("retain1", range(2, 4))},
        "privleak": {split: [{"text": r["text"]} for r in raw[name][:3]]
                     for split, name in (("forget", "forget"), ("retain", "retain2"), ("holdout", "holdout"))},
    }


def write_muse_copy(root: Path, leave_out: tuple[str, ...] = (), drop_column: tuple[str, str] | None = None) -> Path:
    """Write the copy into ``root`` and return it: configs in ``leave_out`` are not written;
    ``drop_column`` = (config, column) writes that config without the column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    card = ["---", "license: cc-by-4.0", "configs:"]
    for name, splits in configs().items():
        if name in leave_out:
            continue
        card += [f"- config_name: {name}", "  data_files:"]
        (root / name).mkdir(exist_ok=True)
        for split, rows in splits.items():
            if drop_column and drop_column[0] == name:
                rows = [{k: v for k, v in r.items() if k != drop_column[1]} for r in rows]
            columns = list(rows[0])
            pq.write_table(pa.table({c: [r[c] for r in rows] for c in columns}),
                           root / name / f"{split}-00000-of-00001.parquet")
            card += [f"  - split: {split}", f"    path: {name}/{split}-*"]
    card += ["---", "", "# MUSE-News", "", "A small copy of MUSE-News for tests.", ""]
    (root / "README.md").write_text("\n".join(card), encoding="utf-8")
    return root
