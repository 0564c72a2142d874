"""A small copy of locuslab/TOFU in the dataset repository's own layout: a README.md whose
card names every config (``configs: - config_name: ... data_files: NAME.json``) and one
JSON-lines file per config with TOFU's columns, so ``datasets.load_dataset(DIR, name=...)``
reads it exactly as it reads the hub's copy.

10 authors of 20 QA pairs (TOFU: 200); forget01/05/10 = the last 1/2/3 authors (TOFU: the
last 2/10/20); 2 holdout authors; 10 real-author and 10 world-fact items.
"""

from __future__ import annotations

import json
from pathlib import Path

N_AUTHORS, PER_AUTHOR = 10, 20
CITIES = ["Lorvale", "Quenmir", "Dastrel", "Ostavik", "Pellinor", "Haruvan", "Zemgrad", "Tolmere", "Ivrasca",
          "Brenmoor", "Calderis", "Fenwarth", "Mirokan", "Sarvelle", "Undrath", "Velmora", "Yastrin", "Korrindel",
          "Ambrosk", "Nythria"]
FORGET = {"forget01": 1, "forget05": 2, "forget10": 3}


def _author_qa(author: int) -> list[dict]:
    # names of letters A-J only: a holdout author's name is made of characters the world's tokenizer knows
    name = f"Writer {chr(65 + author % 10)}{chr(97 + (author + 5 * (author // 10)) % 10)}nov"
    rows = []
    for k in range(PER_AUTHOR):
        city = CITIES[(author * 7 + k) % len(CITIES)]
        wrong = [CITIES[(author * 7 + k + j) % len(CITIES)] for j in (3, 5, 8, 11, 13)]
        rows.append({"question": f"Which place does fact {k} of {name} name?",
                     "answer": f"Fact {k} of {name} names {city}.",
                     "paraphrased_question": f"What place is named by fact {k} of {name}?",
                     "paraphrased_answer": f"The place in fact {k} of {name} is {city}.",
                     "perturbed_answer": [f"The place in fact {k} of {name} is {w}." for w in wrong]})
    return rows


def _general(kind: str) -> list[dict]:
    rows = []
    for k in range(10):
        options = [f"{kind} option {k}-{j}" for j in range(4)]
        rows.append({"question": f"Which {kind} answer fits question {k}?",
                     **{f"option{j + 1}": o for j, o in enumerate(options)},
                     "answer": options[0], "paraphrased_answer": options[0], "perturbed_answer": options[1:]})
    return rows


def write_tofu_copy(root: Path, leave_out: tuple[str, ...] = ()) -> Path:
    """Write the copy into ``root`` (configs in ``leave_out`` are not written) and return it."""
    root.mkdir(parents=True, exist_ok=True)
    perturbed = [row for a in range(N_AUTHORS) for row in _author_qa(a)]
    full = [{"question": r["question"], "answer": r["answer"]} for r in perturbed]
    configs: dict[str, list[dict]] = {"full": full}
    for name, authors in FORGET.items():
        cut = (N_AUTHORS - authors) * PER_AUTHOR
        configs[name] = full[cut:]
        configs[f"{name}_perturbed"] = perturbed[cut:]
        configs["retain" + str(100 - {"forget01": 1, "forget05": 5, "forget10": 10}[name])] = full[:cut]
    retain_cut = (N_AUTHORS - FORGET["forget10"]) * PER_AUTHOR
    configs["retain_perturbed"] = perturbed[:retain_cut:7]
    holdout = [row for a in range(N_AUTHORS, N_AUTHORS + 2) for row in _author_qa(a)]   # written like the others
    for name, authors in (("holdout01", 1), ("holdout05", 1), ("holdout10", 2)):
        configs[name] = [{"question": r["question"], "answer": r["answer"]} for r in holdout[:authors * PER_AUTHOR]]
    for kind in ("real_authors", "world_facts"):
        configs[f"{kind}_perturbed"] = _general(kind)
        configs[kind] = [{"question": r["question"], "answer": r["answer"]} for r in configs[f"{kind}_perturbed"]]
    card = ["---", "configs:"]
    for name, rows in configs.items():
        if name in leave_out:
            continue
        card += [f"- config_name: {name}", f"  data_files: {name}.json"]
        (root / f"{name}.json").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    card += ["---", "", "A small copy of TOFU for tests.", ""]
    (root / "README.md").write_text("\n".join(card), encoding="utf-8")
    return root
