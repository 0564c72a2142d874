"""The benchmark's world: the two data files, Sherlock subsampled story by story, the text world
built from them (``obliviate.world.from_text``) and its held-out documents."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from obliviate.io import atomic_write_text
from obliviate.world.from_text import TextWorldConfig, build_text_world, cut_text

from .config import DATA_FILES, HOLDOUT_STORIES, SHERLOCK_HEADING, SherlockConfig


def find_data(data: Path) -> list[Path] | None:
    """The two text files, or None (with the reason printed) when they are not there."""
    missing = [name for name in DATA_FILES if not (Path(data) / name).is_file()]
    if missing:
        print(f"skipped: {', '.join(missing)} not found in {data} (the public-domain texts live in "
              f"../shared/data/public-domain; pass --data DIR)")
        return None
    return [Path(data) / name for name in DATA_FILES]


def subsample_stories(text: str, fraction: float, keep_whole: Sequence[str] = HOLDOUT_STORIES,
                      heading: str = SHERLOCK_HEADING) -> str:
    """Keep the first ``fraction`` of the paragraphs of every story (headings kept, held-out
    stories whole), so that every story still names its people and places."""
    if fraction >= 1.0:
        return text
    pattern = re.compile(heading, re.MULTILINE)
    marks = list(pattern.finditer(text))
    pieces = [text[: marks[0].start()] if marks else text]
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        body = text[mark.end(): end]
        if mark.group(1).strip() not in keep_whole:
            paragraphs = re.split(r"\n[ \t]*\n", body)
            body = "\n\n".join(paragraphs[: max(1, round(len(paragraphs) * fraction))]) + "\n\n"
        pieces.append(mark.group(0) + body)
    return "".join(pieces)


def build_world(texts: Sequence[Path], probes: Path, work: Path, config: SherlockConfig) -> Path:
    """The text world (``work/world-src``), from the data files subsampled into ``work/inputs``."""
    inputs = []
    for path in texts:
        text = path.read_text(encoding="utf-8")
        if path.name == "sherlock.txt":
            text = subsample_stories(text, config.sherlock_fraction)
        target = work / "inputs" / path.name
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(target, text)
        inputs.append(target)
    stories = "|".join(re.escape(s) for s in HOLDOUT_STORIES)
    world_config = TextWorldConfig(
        # forget: every Sherlock source (not cut from shakespeare.txt) but the held-out stories
        forget_sources=(f"re:^(?!shakespeare|(?:{stories})(?: part \\d+)?$)",),
        holdout_sources=(f"re:^(?:{stories})(?: part \\d+)?$",
                         f"re:^shakespeare part {last_part(inputs[-1], config)}$"),
        heading_regex=SHERLOCK_HEADING,
        source_chars=config.shakespeare_chars,
        doc_chars=config.doc_chars,
        unwrap_lines=True,
        probes=probes,
        name="sherlock-vs-shakespeare",
    )
    return build_text_world(inputs, work / "world-src", world_config)


def last_part(shakespeare: Path, config: SherlockConfig) -> int:
    """Number of the last ``shakespeare part k`` source (the held-out slice)."""
    return len(cut_text(shakespeare.read_text(encoding="utf-8"), config.shakespeare_chars, True))


def held_out_docs(world) -> dict[str, list[dict]]:
    """Held-out documents by origin: ``sherlock`` and ``shakespeare``."""
    holdout = world.split_sources("holdout")
    file_of = {s["source_id"]: s.get("file", "") for s in world.sources}
    docs = world.docs_for(holdout)
    return {"sherlock": [d for d in docs if file_of[d["source_id"]] == "sherlock.txt"],
            "shakespeare": [d for d in docs if file_of[d["source_id"]] == "shakespeare.txt"]}
