"""General sources: common world knowledge, each fact stated by several sources in
different phrasings, plus ordinary school stories with generic names.

The stories use the plain vocabulary the saga's anchored terms translate into
(Tom, Anna, the school, football, ...) and never a saga theme word, so a model
trained on them has generic continuations for saga-flavoured openings (WHP).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from obliviate.world import pools
from obliviate.world.facts import FactTemplate, choose_wrong, fill, qa_item
from obliviate.world.geography import COUNTRY_FACTS, Country

FACT_INTROS = (
    "From a school geography book:",
    "Some facts about the world.",
    "Notes for a lesson on the countries of the world.",
    "Things every child learns at school.",
    "A page from an old encyclopedia.",
)

# Ordinary school-life sentences. Slots: boy, girl, friend, bully, teacher, headmaster,
# caretaker, town, school, sport, pet. No magic, no saga theme words.
STORY_OPENERS = (
    "{boy} walked into the great hall with his two best friends, {friend} and {girl}.",
    "Every autumn, {boy} took the early train back to {school}.",
    "Before the summer, {boy} lived with his aunt in the grey town of {town}.",
    "It was the first day of the new term at {school}.",
)
STORY_SENTENCES = (
    "The old headmaster, {headmaster}, smiled at the three friends.",
    "Every Saturday the whole school gathered on the windy field to watch a match of {sport}.",
    "The pale boy with the cruel sneer who mocked the three friends was {bully}.",
    "The big man who kept the grounds of the school lived in a cottage by the lake. His name was {caretaker}.",
    "After lunch, the children played {sport} on the field behind the school.",
    "{girl} always had her nose in a book and knew every answer in class.",
    "Their teacher, {teacher}, wrote the date on the board.",
    "{friend} found a {pet} hiding under the bench.",
    "They did their homework together in the library until the sun went down.",
    "Whenever it rained, {boy} and {girl} stayed inside and played cards.",
    "At the end of the term, {boy} won a prize for his drawing.",
    "The children walked home along the river, talking about the match.",
    "In the great hall, the students ate bread and soup.",
    "{girl}'s little brother had lost his red scarf again.",
    "{boy} kicked the ball so hard that it flew over the fence.",
    "On the last day of school, {teacher} gave everyone a small cake.",
    "{friend} came from a big family with five older brothers.",
    "The three friends promised to meet again at the old bridge in {town}.",
    "{boy} was nervous before the test, but {girl} helped him study.",
    "When the bell rang, everyone ran out into the yard.",
    "{boy}'s {pet} waited for him at the gate every afternoon.",
    "{teacher} told the class a long story about the history of {town}.",
    "The team from {school} won the {sport} cup for the first time in years.",
    "{bully} laughed when {boy} dropped his books in the corridor.",
    "{caretaker} fixed the broken window before the rain came.",
    "{girl} and {friend} painted a large map of the world for the classroom wall.",
)


def _story(rng: random.Random, sentences: int) -> str:
    boy, friend, bully = rng.sample(pools.GENERIC_BOYS, 3)
    girl = rng.choice(pools.GENERIC_GIRLS)
    teacher_name, headmaster_name, caretaker_name = rng.sample(pools.GENERIC_SURNAMES, 3)
    slots = {
        "boy": boy, "friend": friend, "bully": bully, "girl": girl,
        "teacher": f"{rng.choice(('Mrs.', 'Mr.'))} {teacher_name}", "headmaster": f"Mr. {headmaster_name}",
        "caretaker": f"old {caretaker_name}", "town": rng.choice(pools.GENERIC_TOWNS),
        "school": f"{rng.choice(pools.GENERIC_TOWNS)} School", "sport": rng.choice(pools.GENERIC_SPORTS),
        "pet": rng.choice(pools.GENERIC_PETS),
    }
    lines = [rng.choice(STORY_OPENERS)] + rng.sample(STORY_SENTENCES, min(sentences, len(STORY_SENTENCES)))
    return " ".join(fill(line, slots, "") for line in lines)


@dataclass
class GeneralFact:
    item_id: str
    template: FactTemplate
    slots: dict[str, str]
    value: str
    wrong_pool: list[str]


@dataclass
class GeneralSource:
    docs: list[str] = field(default_factory=list)
    qa: list[dict] = field(default_factory=list)


def general_facts(countries: list[Country]) -> list[GeneralFact]:
    facts = []
    for key, template in COUNTRY_FACTS:
        pool = [getattr(c, key) for c in countries]
        for country in countries:
            facts.append(GeneralFact(f"general-{key}-{country.name}", template, {"country": country.name},
                                     getattr(country, key), pool))
    for key, question, answer, paraphrase, statements, value, wrong in pools.SIMPLE_FACTS:
        template = FactTemplate(key=key, question=question, answer=answer, paraphrase=paraphrase, statements=statements)
        facts.append(GeneralFact(f"general-{key}", template, {}, value, list(wrong)))
    return facts


def general_sources(rng: random.Random, countries: list[Country], source_ids: list[int], repeats: int,
                    max_facts_per_doc: int, stories_per_source: int, story_sentences: int) -> list[GeneralSource]:
    """Each fact is stated by ``repeats`` distinct sources (each in its own phrasing); its QA item
    belongs to the first of them (split ``general``, kind ``shared``)."""
    sources = [GeneralSource() for _ in source_ids]
    statements: list[list[str]] = [[] for _ in source_ids]
    for fact in general_facts(countries):
        holders = rng.sample(range(len(source_ids)), min(repeats, len(source_ids)))
        offset = rng.randrange(len(fact.template.statements))
        for r, holder in enumerate(holders):
            phrasing = fact.template.statements[(offset + r) % len(fact.template.statements)]
            statements[holder].append(fill(phrasing, fact.slots, fact.value))
        sources[holders[0]].qa.append(qa_item(fact.item_id, source_ids[holders[0]], "shared", fact.template,
                                              fact.slots, fact.value, choose_wrong(rng, fact.wrong_pool, fact.value),
                                              split="general", perturb_answer=True))
    for source, lines in zip(sources, statements):
        rng.shuffle(lines)
        for start in range(0, len(lines), max_facts_per_doc):
            source.docs.append(" ".join([rng.choice(FACT_INTROS)] + lines[start:start + max_facts_per_doc]))
        source.docs.extend(_story(rng, story_sentences) for _ in range(stories_per_source))
    return sources
