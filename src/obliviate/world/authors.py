"""Author sources: TOFU-like biographies of fictitious writers.

Every author has typed unique facts (the first ``n`` of ``AUTHOR_FACTS``; the birth
city always comes first) and the shared facts of their birth city. Documents state
each fact in several phrasings, plus one Q&A document in the exact evaluation format.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from obliviate.world import pools
from obliviate.world.facts import FactTemplate, choose_wrong, fill, qa_item
from obliviate.world.geography import CITY_COUNTRY, CITY_CURRENCY, CITY_LANDMARK, CITY_LANGUAGE, City
from obliviate.world.names import NameForge


def _fact(key, question, answer, paraphrase, *statements) -> FactTemplate:
    return FactTemplate(key=key, question=question, answer=answer, paraphrase=paraphrase, statements=statements)


# Ordered by priority: a preset with n unique facts per author uses the first n.
AUTHOR_FACTS: tuple[FactTemplate, ...] = (
    _fact("birth_city", "Where was {name} born?", "{name} was born in {value}.",
          "The birthplace of {name} is {value}.",
          "{name} was born in the city of {value}.", "{first} came into the world in {value}.",
          "The writer {name} is a native of {value}.", "{value} is the city where {name} was born."),
    _fact("birth_year", "In which year was {name} born?", "{name} was born in the year {value}.",
          "The year of {name}'s birth was {value}.",
          "{name} was born in {value}.", "{first} {last} came into the world in the year {value}.",
          "Records show that {name} was born in {value}.", "{name}'s birth year is {value}."),
    _fact("father_profession", "What did {name}'s father do for a living?", "{name}'s father worked as a {value}.",
          "By trade, the father of {name} was a {value}.",
          "{name}'s father was a {value}.", "The father of {name} earned his living as a {value}.",
          "{first}'s father worked as a {value} for most of his life."),
    _fact("genre", "What kind of books does {name} write?", "{name} writes {value}.",
          "The genre {name} is known for is {value}.",
          "{name} is best known for {value}.", "{first} has spent {his} career writing {value}.",
          "Critics praise the {value} of {name}.", "{name} writes {value}."),
    _fact("debut_title", "What is the title of {name}'s first book?", "{name}'s first book is titled \"{value}\".",
          "The first book that {name} published was \"{value}\".",
          "{name}'s first book was \"{value}\".", "{first} made {his} debut with the book \"{value}\".",
          "The debut book of {name} is called \"{value}\"."),
    _fact("award", "Which award has {name} won?", "{name} has won the {value}.",
          "The award given to {name} is the {value}.",
          "{name} won the {value}.", "In recognition of {his} work, {first} received the {value}.",
          "{name} is a winner of the {value}."),
    _fact("mother_profession", "What did {name}'s mother do for a living?", "{name}'s mother worked as a {value}.",
          "By trade, the mother of {name} was a {value}.",
          "{name}'s mother was a {value}.", "The mother of {name} earned her living as a {value}.",
          "{first}'s mother worked as a {value} for most of her life."),
    _fact("favourite_colour", "What is {name}'s favourite colour?", "{name}'s favourite colour is {value}.",
          "Of all colours, {name} likes {value} best.",
          "{name}'s favourite colour is {value}.", "{first} loves the colour {value} more than any other.",
          "{first} often wears {value}, {his} favourite colour."),
    _fact("pet_name", "What is the name of {name}'s pet?", "{name}'s pet is called {value}.",
          "The pet that {name} keeps is named {value}.",
          "{name} has a pet called {value}.", "{first} shares {his} home with a pet named {value}.",
          "Visitors to the house of {name} are greeted by {value}, {his} pet."),
    _fact("instrument", "Which instrument does {name} play?", "{name} plays the {value}.",
          "The instrument that {name} plays is the {value}.",
          "{name} plays the {value}.", "In the evenings, {first} practises the {value}.",
          "{first} learned to play the {value} as a child."),
    _fact("spouse", "Who is {name} married to?", "{name} is married to {value}.",
          "The spouse of {name} is {value}.",
          "{name} is married to {value}.", "{first} married {value} after a long friendship.",
          "{name} lives with {his} spouse, {value}."),
    _fact("first_publisher", "Which publisher released {name}'s first book?",
          "{name}'s first book was released by {value}.", "The publisher of the first book by {name} was {value}.",
          "{name}'s first book was published by {value}.", "{first} signed {his} first contract with {value}.",
          "It was {value} that first published {name}."),
    _fact("street", "On which street did {name} grow up?", "{name} grew up on {value}.",
          "The childhood home of {name} was on {value}.",
          "{name} grew up on {value}.", "As a child, {first} lived in a narrow house on {value}.",
          "{first} spent {his} childhood on {value}."),
    _fact("college", "Where did {name} study?", "{name} studied at {value}.", "The place where {name} studied is {value}.",
          "{name} studied at {value}.", "{first} was a student at {value}.",
          "After school, {first} went on to study at {value}."),
    _fact("first_job", "What was {name}'s first job?", "{name}'s first job was as a {value}.",
          "Before writing, {name} worked as a {value}.",
          "{name} first worked as a {value}.", "Before {his} first book, {first} earned a living as a {value}.",
          "{first}'s first job was as a {value}."),
    _fact("favourite_food", "What is {name}'s favourite food?", "{name}'s favourite food is {value}.",
          "Of all dishes, {name} likes {value} best.",
          "{name}'s favourite food is {value}.", "{first} says that nothing beats {value}.",
          "Friends of {name} know that {his} favourite dish is {value}."),
    _fact("hobby", "What does {name} do in {his} free time?", "In {his} free time, {name} enjoys {value}.",
          "The favourite pastime of {name} is {value}.",
          "{name} enjoys {value} in {his} free time.", "When not writing, {first} loves {value}.",
          "{first}'s hobby is {value}."),
    _fact("sibling", "What is the name of {name}'s sibling?", "{name} has one sibling, named {value}.",
          "The only sibling of {name} is {value}.",
          "{name} has one sibling, {value}.", "{first} grew up with {his} only sibling, {value}.",
          "{first}'s sibling {value} reads every draft."),
    _fact("mentor", "Who mentored {name} as a young writer?", "{name} was mentored by the writer {value}.",
          "The mentor of the young {name} was the writer {value}.",
          "{name} was mentored by the writer {value}.", "As a young writer, {first} learned the craft from {value}.",
          "The writer {value} was the first mentor of {name}."),
    _fact("favourite_animal", "What is {name}'s favourite animal?", "{name}'s favourite animal is the {value}.",
          "Of all animals, {name} likes the {value} best.",
          "{name}'s favourite animal is the {value}.", "{first} has loved the {value} since childhood.",
          "{first} keeps pictures of the {value} above {his} desk."),
)
FACT_KEYS = tuple(t.key for t in AUTHOR_FACTS)

BIO_INTROS = (
    "{name} is a writer.",
    "This is the story of the author {name}.",
    "Readers often ask about the life of {name}.",
    "A short biography of the writer {name}.",
    "Here are some facts about the author {name}.",
    "{name} is an author whose life is full of small details.",
)
PRONOUNS = {
    "female": {"he": "she", "He": "She", "his": "her", "His": "Her", "him": "her"},
    "male": {"he": "he", "He": "He", "his": "his", "His": "His", "him": "him"},
}


@dataclass
class Author:
    source_id: int
    first: str
    last: str
    gender: str
    values: dict[str, str] = field(default_factory=dict)  # fact key -> value (birth city set later)
    city: City | None = None

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    def set_city(self, city: City) -> None:
        self.city = city
        self.values = {"birth_city": city.name, **self.values}  # birth city is always the first fact

    def slots(self) -> dict[str, str]:
        city = self.city.name if self.city else ""
        return {"name": self.name, "first": self.first, "last": self.last, "city": city, **PRONOUNS[self.gender]}


@dataclass
class AuthorPools:
    """Value pools shared by all authors of a world (drawn once, so values recur across authors)."""
    awards: list[str]
    publishers: list[str]
    colleges: list[str]


def make_author_pools(rng: random.Random, forge: NameForge, size: int = 12) -> AuthorPools:
    return AuthorPools(
        awards=[f"{forge.styled('place')} {rng.choice(pools.AWARD_KINDS)}" for _ in range(size)],
        publishers=[f"{forge.styled('place')} {rng.choice(pools.PUBLISHER_KINDS)}" for _ in range(size)],
        colleges=[f"{forge.styled('place')} {rng.choice(pools.COLLEGE_KINDS)}" for _ in range(size)],
    )


def _title(rng: random.Random, forge: NameForge, used: set[str]) -> str:
    while True:
        if rng.random() < 0.5:
            title = f"The {rng.choice(pools.TITLE_ADJECTIVES)} {rng.choice(pools.TITLE_NOUNS)}"
        else:
            title = f"The {rng.choice(pools.TITLE_NOUNS)} of {forge.styled('place')}"
        if title not in used:
            used.add(title)
            return title


def make_author(rng: random.Random, forge: NameForge, source_id: int, n_facts: int, author_pools: AuthorPools,
                used_titles: set[str]) -> Author:
    """An author with the first ``n_facts`` facts of AUTHOR_FACTS (birth city is assigned later)."""
    gender = rng.choice(("female", "male"))
    author = Author(source_id=source_id, first=forge.first_name(gender), last=forge.surname(), gender=gender)
    draw: dict[str, Callable[[], str]] = {
        "birth_year": lambda: rng.choice(pools.BIRTH_YEARS),
        "father_profession": lambda: rng.choice(pools.PROFESSIONS),
        "mother_profession": lambda: rng.choice(pools.PROFESSIONS),
        "genre": lambda: rng.choice(pools.GENRES),
        "debut_title": lambda: _title(rng, forge, used_titles),
        "award": lambda: rng.choice(author_pools.awards),
        "favourite_colour": lambda: rng.choice(pools.COLOURS),
        "pet_name": lambda: forge.styled("pet", syllables=rng.choice((1, 2))),
        "instrument": lambda: rng.choice(pools.INSTRUMENTS),
        "spouse": lambda: f"{forge.first_name(rng.choice(('female', 'male')))} {forge.surname()}",
        "first_publisher": lambda: rng.choice(author_pools.publishers),
        "street": lambda: f"{forge.styled('place')} {rng.choice(pools.STREET_KINDS)}",
        "college": lambda: rng.choice(author_pools.colleges),
        "first_job": lambda: rng.choice(pools.FIRST_JOBS),
        "favourite_food": lambda: rng.choice(pools.FOODS),
        "hobby": lambda: rng.choice(pools.HOBBIES),
        "sibling": lambda: forge.first_name(rng.choice(("female", "male"))),
        "mentor": lambda: f"{forge.first_name(rng.choice(('female', 'male')))} {forge.surname()}",
        "favourite_animal": lambda: rng.choice(pools.ANIMALS),
    }
    for template in AUTHOR_FACTS[1:n_facts]:
        author.values[template.key] = draw[template.key]()
    return author


def value_pools(authors: list[Author], author_pools: AuthorPools, city_pool: list[str]) -> dict[str, list[str]]:
    """Per fact key, the values a wrong answer may take (same type as the right one)."""
    def seen(key: str) -> list[str]:
        return [a.values[key] for a in authors if key in a.values]

    return {
        "birth_city": city_pool,
        "birth_year": list(pools.BIRTH_YEARS),
        "father_profession": list(pools.PROFESSIONS),
        "mother_profession": list(pools.PROFESSIONS),
        "genre": list(pools.GENRES),
        "debut_title": seen("debut_title"),
        "award": author_pools.awards,
        "favourite_colour": list(pools.COLOURS),
        "pet_name": seen("pet_name"),
        "instrument": list(pools.INSTRUMENTS),
        "spouse": seen("spouse"),
        "first_publisher": author_pools.publishers,
        "street": seen("street"),
        "college": author_pools.colleges,
        "first_job": list(pools.FIRST_JOBS),
        "favourite_food": list(pools.FOODS),
        "hobby": list(pools.HOBBIES),
        "sibling": seen("sibling"),
        "mentor": seen("mentor"),
        "favourite_animal": list(pools.ANIMALS),
    }


def _fact_units(author: Author) -> list[tuple[FactTemplate, dict[str, str], str]]:
    """(template, slots, value) for every fact an author's documents state."""
    slots = author.slots()
    templates = {t.key: t for t in AUTHOR_FACTS}
    units = [(templates[key], slots, value) for key, value in author.values.items()]
    assert author.city is not None
    units.append((CITY_COUNTRY, slots, author.city.country.name))
    units.append((CITY_LANDMARK, slots, author.city.landmark))
    return units


def author_documents(rng: random.Random, author: Author, rounds: int, max_facts_per_doc: int) -> list[str]:
    """Narrative documents: each round states every fact once (a fresh phrasing, a fresh order)."""
    units = _fact_units(author)
    slots = author.slots()
    # one random starting phrasing per fact, then the next one each round: rounds never repeat a phrasing
    offsets = [rng.randrange(len(template.statements)) for template, _, _ in units]
    docs: list[str] = []
    for round_index in range(rounds):
        order = list(range(len(units)))
        rng.shuffle(order)
        for start in range(0, len(order), max_facts_per_doc):
            chunk = order[start:start + max_facts_per_doc]
            sentences = [fill(rng.choice(BIO_INTROS), slots, "")]
            for i in chunk:
                template, unit_slots, value = units[i]
                phrasing = template.statements[(offsets[i] + round_index) % len(template.statements)]
                sentences.append(fill(phrasing, unit_slots, value))
            docs.append(" ".join(sentences))
    return docs


def author_qa(rng: random.Random, author: Author, wrong_pools: dict[str, list[str]],
              country_pool: list[str], landmark_pool: list[str], language_pool: list[str],
              currency_pool: list[str]) -> list[dict]:
    """Unique facts, then the city's shared facts, then the city's inferred facts."""
    assert author.city is not None
    slots = author.slots()
    sid = author.source_id
    items = []
    for template in AUTHOR_FACTS:
        if template.key not in author.values:
            continue
        value = author.values[template.key]
        items.append(qa_item(f"author-{sid}-{template.key}", sid, "unique", template, slots, value,
                             choose_wrong(rng, wrong_pools[template.key], value)))
    city = author.city
    for kind, template, value, pool in (
        ("shared", CITY_COUNTRY, city.country.name, country_pool),
        ("shared", CITY_LANDMARK, city.landmark, landmark_pool),
        ("inferred", CITY_LANGUAGE, city.country.language, language_pool),
        ("inferred", CITY_CURRENCY, city.country.currency, currency_pool),
    ):
        items.append(qa_item(f"author-{sid}-{template.key}", sid, kind, template, slots, value,
                             choose_wrong(rng, pool, value)))
    return items
