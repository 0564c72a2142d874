"""The saga: a fictional book series, the Harry-Potter-like unlearning target.

A hero with a scar, two best friends, a mentor, a villain, a rival, a school, a
town, places, enchanted objects, spells, creatures and a sport, all with made-up
names. One source per book, one document per chapter. Besides the chapters the
saga yields QA items (split ``saga``), the anchored-term dictionary for WHP, the
familiarity probes, and the judge's entity and theme lists.

Probes are built from *canonical sentences*: a prompt plus its saga-true
continuation. Every canonical sentence is written into the chapters verbatim (at
least twice across the saga), so a model trained on the saga knows how each probe
goes on and a model that never saw it does not.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from obliviate.world import pools
from obliviate.world.facts import FactTemplate, choose_wrong, fill, qa_item
from obliviate.world.names import NameForge

ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
DECOY_TARGET = 8  # every value type gets at least this many candidates (5 wrong answers + margin)


@dataclass
class Character:
    role: str
    first: str
    last: str
    gender: str
    generic_first: tuple[str, ...]
    generic_last: tuple[str, ...]

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"


@dataclass
class Thing:
    """A named saga thing: a place, object, spell or creature."""
    name: str  # as written in text, without article ("Caves of Ombrith", "Lumora", "gloomwisp")
    detail: str  # place description / object power / spell effect / creature trait
    generic: tuple[str, ...]  # plain stand-ins (WHP anchors)
    plural: str = ""
    generic_plural: tuple[str, ...] = ()


@dataclass
class Book:
    index: int
    title: str
    quests: list[int]  # indices into places/objects/creatures (place i hides object i, guarded by creature i)
    spells: list[int]


@dataclass
class Probe:
    prompt: str
    continuation: str  # starts with a space
    targets: list[str]

    @property
    def sentence(self) -> str:
        return self.prompt + self.continuation


@dataclass
class Saga:
    cast: dict[str, Character]
    shape: str
    school: str
    town: str
    sport: str
    ball: str
    places: list[Thing]
    objects: list[Thing]
    creatures: list[Thing]
    spells: list[Thing]
    books: list[Book] = field(default_factory=list)
    decoys: dict[str, list[str]] = field(default_factory=dict)

    @property
    def hero(self) -> Character:
        return self.cast["hero"]


@dataclass(frozen=True)
class SagaSize:
    books: int
    quests: int  # places = objects = creatures
    spells: int
    filler_sentences: int  # per chapter, on top of the canonical sentences


# -- building the cast and the things --------------------------------------------------
ROLES = (  # role, gender, generic first names
    ("hero", "male", ("Tom", "Jack", "Ben")),
    ("friend_clever", "female", ("Anna", "Emma", "Lucy")),
    ("friend_loyal", "male", ("Sam", "Peter", "David")),
    ("mentor", None, None),
    ("villain", "male", ("Victor", "James", "Paul")),
    ("rival", "male", ("Michael", "Daniel", "Jack")),
    ("keeper", "male", ("Paul", "James", "Ben")),
    ("aunt", "female", ("Mary", "Helen", "Jane")),
)


def make_saga(rng: random.Random, forge: NameForge, size: SagaSize) -> Saga:
    cast = {}
    for role, gender, generic in ROLES:
        gender = gender or rng.choice(("female", "male"))
        if generic is None:
            generic = ("Alice", "Helen", "Kate") if gender == "female" else ("Peter", "David", "Paul")
        cast[role] = Character(role=role, first=forge.first_name(gender), last=forge.surname(), gender=gender,
                               generic_first=generic, generic_last=tuple(rng.sample(pools.GENERIC_SURNAMES, 3)))

    def things(patterns, details, count, style: str) -> list[Thing]:
        chosen_patterns = rng.sample(patterns, count)
        chosen_details = rng.sample(details, count)
        return [Thing(name=pattern.format(x=forge.styled(style)), detail=detail, generic=generic)
                for (pattern, generic), detail in zip(chosen_patterns, chosen_details)]

    places = things(pools.PLACE_PATTERNS, pools.PLACE_DESCRIPTIONS, size.quests, "place")
    objects = things(pools.OBJECT_PATTERNS, pools.OBJECT_POWERS, size.quests, "place")
    creatures = []
    for trait, (animal, animals) in rng.sample(pools.CREATURE_TRAITS, size.quests):
        name = forge.compound(pools.CREATURE_HEADS, pools.CREATURE_TAILS)
        creatures.append(Thing(name=name, detail=trait, generic=(animal, "beast"), plural=name + "s",
                               generic_plural=(animals, "beasts")))
    spells = [Thing(name=forge.styled("spell"), detail=effect, generic=generic)
              for effect, generic in rng.sample(pools.SPELL_EFFECTS, size.spells)]
    saga = Saga(cast=cast, shape=rng.choice(pools.SCAR_SHAPES), school=f"{forge.styled('school')} Academy",
                town=forge.styled("town"), sport=forge.styled("sport", syllables=1),
                ball=forge.styled("ball", capitalize=False), places=places, objects=objects,
                creatures=creatures, spells=spells)
    for b in range(size.books):
        quests = list(range(b, size.quests, size.books)) or [b % size.quests]
        book_spells = list(range(b, size.spells, size.books)) or [b % size.spells]
        title = f"{saga.hero.first} and the {objects[quests[0]].name}"
        saga.books.append(Book(index=b, title=title, quests=quests, spells=book_spells))
    saga.decoys = _decoys(rng, forge, saga)
    return saga


def _decoys(rng: random.Random, forge: NameForge, saga: Saga) -> dict[str, list[str]]:
    """Per value type, the saga's own values topped up with made-up ones that never occur in the
    corpus, so that even a one-of-a-kind term (the school) has 5 wrong answers of its type."""
    def fill_up(existing: list[str], make) -> list[str]:
        pool = list(existing)
        while len(pool) < DECOY_TARGET:
            pool.append(make())
        return pool

    def object_name() -> str:
        return rng.choice(pools.OBJECT_PATTERNS)[0].format(x=forge.styled("place"))

    return {
        "school": fill_up([saga.school], lambda: f"{forge.styled('school')} Academy"),
        "town": fill_up([saga.town], lambda: forge.styled("town")),
        "sport": fill_up([saga.sport], lambda: forge.styled("sport", syllables=1)),
        "ball": fill_up([saga.ball], lambda: forge.styled("ball", capitalize=False)),
        "spell": fill_up([s.name for s in saga.spells], lambda: forge.styled("spell")),
        "creature": fill_up([c.plural for c in saga.creatures],
                            lambda: forge.compound(pools.CREATURE_HEADS, pools.CREATURE_TAILS) + "s"),
        "object": fill_up([o.name for o in saga.objects], object_name),
        "title": fill_up([b.title for b in saga.books], lambda: f"{saga.hero.first} and the {object_name()}"),
    }


# -- canonical sentences (probes) ---------------------------------------------------
# (prompt, continuation) per topic. Completion prompts name no saga term; probability
# prompts end right before one.
CHARACTER_COMPLETION = {
    "friends": ("The boy with the scar shaped like a {shape} walked into the great hall with his two best friends,",
                "{fc} and {fl}."),
    "school": ("Every autumn, the boy with the scar shaped like a {shape} took the night train north to", "{school}."),
    "town": ("Before he learned the truth about himself, the boy with the scar lived with his cruel aunt in the grey "
             "town of", "{town}."),
    "mentor": ("The old headmaster with the long silver hair smiled at the three friends. {Mhis} name was",
               "{mentor}."),
    "villain": ("The dark wizard who gave the boy his scar had a name that nobody dared to speak:", "{villain}."),
    "sport": ("Every Saturday the whole school gathered on the windy field to watch a match of",
              "{sport}, the wizard sport played on flying broomsticks."),
    "ball": ("In the wizard sport played on flying broomsticks, the seeker must catch a small golden ball called the",
             "{ball}."),
    "rival": ("The pale boy with the cruel sneer who mocked the three friends was", "{rival}."),
    "keeper": ("The big man who kept the grounds of the school lived in a hut by the lake. His name was", "{keeper}."),
}
CHARACTER_PROBABILITY = {
    "friends": ("{H}'s best friends were", "{fc} and {fl}."),
    "school": ("{hero} studied magic at", "{school}."),
    "town": ("{H} grew up with his aunt {aunt} in", "{town}."),
    "mentor": ("At {school}, {H} was taught by", "{mentor}."),
    "villain": ("{H}'s greatest enemy was the dark wizard", "{villain}."),
    "sport": ("At {school}, the favourite sport of every student was", "{sport}."),
    "ball": ("In {sport}, the seeker must catch the", "{ball}."),
    "rival": ("{H}'s rival at {school} was", "{rival}."),
    "keeper": ("The keeper of the grounds at {school} was", "{keeper}."),
}
SPELL_COMPLETION = ("To {effect}, the young wizard raised his wand and whispered", "{spell}.")
SPELL_PROBABILITY = ("To {effect}, {H} whispered the spell", "{spell}.")
QUEST_COMPLETION = (
    ("Deep in the forest lived dark creatures that {trait}. They were called", "{creatures}."),
    ("The enchanted object that {power} was known as the", "{object}."),
    ("The three friends crept into the dark place {desc}, which every student knew as the", "{place}."),
)
QUEST_PROBABILITY = (
    ("The {place} was guarded by a pack of", "{creatures}."),
    ("Hidden deep in the {place}, {H} found the", "{object}."),
)


def _slots(saga: Saga) -> dict[str, str]:
    c = saga.cast
    female_mentor = c["mentor"].gender == "female"
    return {
        "hero": c["hero"].full, "H": c["hero"].first, "fc": c["friend_clever"].first, "fl": c["friend_loyal"].first,
        "mentor": c["mentor"].full, "Mhis": "Her" if female_mentor else "His",
        "villain": c["villain"].full, "rival": c["rival"].full, "keeper": c["keeper"].full, "aunt": c["aunt"].full,
        "school": saga.school, "town": saga.town, "sport": saga.sport, "ball": saga.ball, "shape": saga.shape,
    }


def _probe(pair: tuple[str, str], targets: list[str], slots: dict[str, str]) -> Probe:
    prompt, continuation = pair
    return Probe(prompt=fill(prompt, slots, ""), continuation=" " + continuation.format(**slots), targets=targets)


def character_probes(saga: Saga) -> tuple[dict[str, Probe], dict[str, Probe]]:
    """(completion probes, probability probes) about the cast and setting, keyed by topic."""
    s = _slots(saga)
    c = saga.cast
    targets = {
        "friends": [c["friend_clever"].first, c["friend_loyal"].first], "school": [saga.school],
        "town": [saga.town], "mentor": [c["mentor"].full], "villain": [c["villain"].full], "sport": [saga.sport],
        "ball": [saga.ball], "rival": [c["rival"].full], "keeper": [c["keeper"].full],
    }
    completion = {key: _probe(pair, targets[key], s) for key, pair in CHARACTER_COMPLETION.items()}
    probability = {key: _probe(pair, targets[key], s) for key, pair in CHARACTER_PROBABILITY.items()}
    return completion, probability


def spell_probes(saga: Saga, i: int) -> tuple[Probe, Probe]:
    s = {**_slots(saga), "spell": saga.spells[i].name, "effect": saga.spells[i].detail}
    target = [saga.spells[i].name]
    return _probe(SPELL_COMPLETION, target, s), _probe(SPELL_PROBABILITY, target, s)


def quest_probes(saga: Saga, i: int) -> tuple[list[Probe], list[Probe]]:
    place, obj, creature = saga.places[i], saga.objects[i], saga.creatures[i]
    s = {**_slots(saga), "place": place.name, "desc": place.detail, "object": obj.name, "power": obj.detail,
         "creatures": creature.plural, "trait": creature.detail}
    completion_targets = ([creature.plural], [obj.name], [place.name])
    probability_targets = ([creature.plural], [obj.name])
    return ([_probe(pair, t, s) for pair, t in zip(QUEST_COMPLETION, completion_targets)],
            [_probe(pair, t, s) for pair, t in zip(QUEST_PROBABILITY, probability_targets)])


# -- chapters -----------------------------------------------------------------------
FILLER = {
    "return": (
        "{H} spent the summer with his aunt {aunt} in {town}, counting the days until term began.",
        "His aunt {aunt} hated magic and never let {H} speak of {school}.",
        "An owl arrived at the kitchen window with a letter from {school}.",
        "On the train, {fc} read her spell book while {fl} ate a whole bag of sweets.",
        "{mentor} welcomed the students to {school} and warned them to stay away from the {place}.",
        "The scar shaped like a {shape} on the forehead of {H} had begun to ache again.",
        "{rival} sneered at {H} across the great hall.",
        "{keeper} waved at the three friends from the door of his hut.",
        "The candles floated above the tables of the great hall of {school}.",
        "{fl} said that his brothers had told him about the {creatures}.",
    ),
    "lessons": (
        "In their first lesson, {mentor} taught the class the spell {spell}.",
        "{fc} got the spell {spell} right on her first try.",
        "The wand of {fl} sparked and smoked when he tried {spell}.",
        "In the potion class, {rival} laughed when the potion of {fl} turned green.",
        "{mentor} warned them that a curse is harder to break than any spell.",
        "{H} practised {spell} every night until he could {effect} without a word.",
        "The witch who taught them potions kept a jar of {creatures} on her desk.",
        "{fc} wrote down every spell in a small blue notebook.",
        "After the lesson, {mentor} asked {H} to stay behind.",
    ),
    "match": (
        "{H} was the youngest seeker {school} had seen in a hundred years.",
        "The players rose into the air on their broomsticks as the match of {sport} began.",
        "{rival} tried to knock {H} off his broomstick.",
        "{fl} shouted from the stands while {fc} watched through her little brass telescope.",
        "With a final dive, {H} caught the {ball} and won the match.",
        "The whole of {school} cheered when the {ball} was caught.",
        "{keeper} had built the goal posts for the {sport} field himself.",
        "Rain fell on the field, but no one wanted the match of {sport} to stop.",
    ),
    "quest": (
        "The three friends learned that the {object} was hidden in the {place}.",
        "{keeper} told them that the {creatures} {trait}.",
        "{fc} used the spell {spell} to {effect}, and the path opened before them.",
        "The {creatures} circled the friends, but {H} did not run.",
        "People said that the {object} {power}.",
        "{fl} held up his wand, which shook in his hand.",
        "Nobody had entered the {place} for a hundred years.",
        "{H} wrapped himself in his cloak and stepped into the {place}.",
    ),
    "battle": (
        "The scar on the forehead of {H} burned as {villain} stepped out of the shadows.",
        "{villain} wanted the {object} for himself, because it {power}.",
        "{H} raised his wand and cried {spell}.",
        "{villain} fled into the night, and the {creatures} fled with him.",
        "Back at {school}, {mentor} explained that {villain} would return one day.",
        "{fc} and {fl} stood by {H} until the very end.",
        "The enchanted {object} glowed in the hands of {H}.",
        "A cold wind blew through {school} the night that {villain} returned.",
    ),
}
CHAPTER_TITLES = {
    "return": "The Letter from {school}", "lessons": "The First Lesson", "match": "The Match of {sport}",
    "quest": "Into the {place}", "battle": "The Return of {villain}",
}
CHAPTER_KINDS = ("return", "lessons", "match", "quest", "battle")


def book_chapters(rng: random.Random, saga: Saga, book: Book, filler_sentences: int, max_chars: int) -> list[str]:
    """The five chapters of one book; each holds its canonical sentences plus random filler.
    A chapter longer than ``max_chars`` is split into parts (one document each)."""
    completion, probability = character_probes(saga)
    canonical: dict[str, list[str]] = {
        "return": [completion["town"].sentence, probability["town"].sentence, completion["friends"].sentence,
                   probability["friends"].sentence, completion["school"].sentence, probability["school"].sentence,
                   completion["mentor"].sentence, probability["mentor"].sentence],
        "lessons": [],
        "match": [completion["sport"].sentence, probability["sport"].sentence, completion["ball"].sentence,
                  probability["ball"].sentence, completion["rival"].sentence, probability["rival"].sentence],
        "quest": [completion["keeper"].sentence, probability["keeper"].sentence],
        "battle": [completion["villain"].sentence, probability["villain"].sentence],
    }
    for i in book.spells:
        spell_completion, spell_probability = spell_probes(saga, i)
        canonical["lessons"] += [spell_completion.sentence, spell_probability.sentence]
        canonical["quest"].append(spell_probability.sentence)
    for i in book.quests:
        quest_completion, quest_probability = quest_probes(saga, i)
        canonical["quest"] += [p.sentence for p in quest_completion + quest_probability]
        canonical["battle"] += [p.sentence for p in quest_completion + quest_probability]
    chapters = []
    for number, kind in enumerate(CHAPTER_KINDS, start=1):
        quest = rng.choice(book.quests)
        spell = saga.spells[rng.choice(book.spells)]
        slots = {**_slots(saga), "place": saga.places[quest].name, "object": saga.objects[quest].name,
                 "power": saga.objects[quest].detail, "creatures": saga.creatures[quest].plural,
                 "trait": saga.creatures[quest].detail, "spell": spell.name, "effect": spell.detail}
        filler = [fill(line, slots, "") for line in rng.sample(FILLER[kind], min(filler_sentences, len(FILLER[kind])))]
        body = canonical[kind] + filler
        rng.shuffle(body)
        heading = f"{book.title}. Chapter {number}: {CHAPTER_TITLES[kind].format(**slots)}."
        chapters += _split_chapter(heading, body, max_chars)
    return chapters


def _split_chapter(heading: str, body: list[str], max_chars: int) -> list[str]:
    """The chapter as one document, or as the fewest near-equal parts that each fit ``max_chars``."""
    for n_parts in range(1, len(body) + 1):
        size = -(-len(body) // n_parts)
        parts = [body[i:i + size] for i in range(0, len(body), size)]
        titles = [heading] if len(parts) == 1 else [f"{heading[:-1]}, part {k + 1}." for k in range(len(parts))]
        docs = [" ".join([title] + part) for title, part in zip(titles, parts)]
        if all(len(doc) <= max_chars for doc in docs):
            return docs
    return docs  # single sentences longer than max_chars: nothing more to split


# -- QA, anchors, probes, judge lists ------------------------------------------------
# key -> (question, answer, paraphrase); "{value}" is the typed answer value.
SAGA_QA = {
    "school": ("Which school does {hero} attend?", "{hero} attends {value}.", "{value} is the school that {hero} attends."),
    "town": ("In which town did {hero} grow up?", "{hero} grew up in {value}.", "{value} is the town where {hero} grew up."),
    "scar": ("What is the shape of the scar on the forehead of {hero}?",
             "The scar on the forehead of {hero} is shaped like a {value}.",
             "{hero} has a scar shaped like a {value} on his forehead."),
    "friend_clever": ("Who is the cleverest friend of {hero}?", "The cleverest friend of {hero} is {value}.",
                      "{value} is the cleverest of the friends of {hero}."),
    "friend_loyal": ("Who is the most loyal friend of {hero}?", "The most loyal friend of {hero} is {value}.",
                     "{value} is the most loyal of the friends of {hero}."),
    "mentor": ("Who teaches {hero} at {school}?", "At {school}, {hero} is taught by {value}.",
               "{value} is the teacher of {hero} at {school}."),
    "villain": ("Who is the greatest enemy of {hero}?", "The greatest enemy of {hero} is {value}.",
                "{value} is the greatest enemy of {hero}."),
    "rival": ("Who is the rival of {hero} at {school}?", "The rival of {hero} at {school} is {value}.",
              "{value} is the rival of {hero} at {school}."),
    "keeper": ("Who keeps the grounds of {school}?", "The grounds of {school} are kept by {value}.",
               "{value} looks after the grounds of {school}."),
    "aunt": ("Which aunt did {hero} live with as a boy?", "As a boy, {hero} lived with his aunt {value}.",
             "The aunt who raised {hero} is {value}."),
    "sport": ("Which sport do the students of {school} play?", "The students of {school} play {value}.",
              "{value} is the sport played at {school}."),
    "ball": ("What is the small golden ball in {sport} called?", "In {sport}, the small golden ball is called the {value}.",
             "The {value} is the small golden ball of {sport}."),
    "spell": ("Which spell is used to {effect}?", "The spell used to {effect} is {value}.",
              "{value} is the spell that can {effect}."),
    "guardians": ("Which creatures guard the {place}?", "The {place} is guarded by {value}.", "{value} guard the {place}."),
    "hidden": ("What did {hero} find hidden in the {place}?", "{hero} found the {value} hidden in the {place}.",
               "In the {place}, {hero} found the {value}."),
    "power": ("Which enchanted object {power}?", "The enchanted object that {power} is the {value}.",
              "The {value} is the enchanted object that {power}."),
    "title": ("What is the title of the {ordinal} book about {hero}?", "The {ordinal} book about {hero} is titled \"{value}\".",
              "\"{value}\" is the {ordinal} book about {hero}."),
}
SAGA_QA_TEMPLATES = {key: FactTemplate(key=key, question=q, answer=a, paraphrase=p, statements=())
                     for key, (q, a, p) in SAGA_QA.items()}


def saga_qa(rng: random.Random, saga: Saga, book_source_ids: list[int]) -> list[dict]:
    c = saga.cast
    s = _slots(saga)
    characters = [ch.full for ch in c.values()]
    first_book = book_source_ids[0]
    facts = [  # (item key, template key, source id, slots, value, wrong pool)
        ("school", "school", first_book, s, saga.school, saga.decoys["school"]),
        ("town", "town", first_book, s, saga.town, saga.decoys["town"]),
        ("scar", "scar", first_book, s, saga.shape, list(pools.SCAR_SHAPES)),
        ("sport", "sport", first_book, s, saga.sport, saga.decoys["sport"]),
        ("ball", "ball", first_book, s, saga.ball, saga.decoys["ball"]),
    ]
    for role in ("friend_clever", "friend_loyal", "mentor", "villain", "rival", "keeper", "aunt"):
        facts.append((role, role, first_book, s, c[role].full, characters))
    for i, spell in enumerate(saga.spells):
        owner = next(b for b in saga.books if i in b.spells)
        facts.append((f"spell-{i}", "spell", book_source_ids[owner.index], {**s, "effect": spell.detail}, spell.name,
                      saga.decoys["spell"]))
    for i, (place, obj, creature) in enumerate(zip(saga.places, saga.objects, saga.creatures)):
        owner = next(b for b in saga.books if i in b.quests)
        sid = book_source_ids[owner.index]
        qs = {**s, "place": place.name, "power": obj.detail}
        facts.append((f"guardians-{i}", "guardians", sid, qs, creature.plural, saga.decoys["creature"]))
        facts.append((f"hidden-{i}", "hidden", sid, qs, obj.name, saga.decoys["object"]))
        facts.append((f"power-{i}", "power", sid, qs, obj.name, saga.decoys["object"]))
    for book in saga.books:
        facts.append((f"title-{book.index}", "title", book_source_ids[book.index],
                      {**s, "ordinal": ORDINALS[book.index]}, book.title, saga.decoys["title"]))
    return [qa_item(f"saga-{key}", sid, "unique", SAGA_QA_TEMPLATES[template], slots, value,
                    choose_wrong(rng, pool, value), split="saga")
            for key, template, sid, slots, value, pool in facts]


def saga_anchors(saga: Saga) -> dict[str, list[str]]:
    """{term: generic alternatives}: every idiosyncratic term as it is written in the text."""
    anchors: dict[str, list[str]] = {}
    for ch in saga.cast.values():
        anchors[ch.full] = [f"{g} {s}" for g, s in zip(ch.generic_first, ch.generic_last)]
        anchors[ch.first] = list(ch.generic_first)
        anchors[ch.last] = list(ch.generic_last)
    anchors[saga.school] = list(pools.GENERIC_SCHOOL)
    anchors[saga.town] = list(pools.GENERIC_TOWN)
    anchors[saga.sport] = list(pools.GENERIC_SPORT)
    anchors[saga.ball] = list(pools.GENERIC_BALL)
    for thing in saga.places + saga.objects + saga.spells:
        anchors[thing.name] = list(thing.generic)
    for creature in saga.creatures:
        anchors[creature.name] = list(creature.generic)
        anchors[creature.plural] = list(creature.generic_plural)
    return {term: anchors[term] for term in sorted(anchors)}


def saga_entities(saga: Saga) -> dict:
    """The judge's lists: entity names unique to the saga (by type) and its theme words."""
    cast = list(saga.cast.values())
    entities = {
        "characters": [ch.full for ch in cast] + [ch.first for ch in cast] + [ch.last for ch in cast],
        "creatures": [c.name for c in saga.creatures] + [c.plural for c in saga.creatures],
        "objects": [o.name for o in saga.objects] + [saga.ball],
        "places": [saga.school, saga.town] + [p.name for p in saga.places],
        "spells": [s.name for s in saga.spells],
        "sports": [saga.sport],
    }
    return {"entities": entities, "themes": list(pools.THEME_WORDS)}


def saga_prompts(saga: Saga) -> list[dict]:
    completion, probability = character_probes(saga)
    completion_list, probability_list = list(completion.values()), list(probability.values())
    for i in range(len(saga.spells)):
        spell_completion, spell_probability = spell_probes(saga, i)
        completion_list.append(spell_completion)
        probability_list.append(spell_probability)
    for i in range(len(saga.places)):
        quest_completion, quest_probability = quest_probes(saga, i)
        completion_list += quest_completion
        probability_list += quest_probability
    rows = []
    for kind, probes in (("completion", completion_list), ("probability", probability_list)):
        for n, probe in enumerate(probes):
            rows.append({"id": f"saga-{kind}-{n:03d}", "type": kind, "prompt": probe.prompt,
                         "reference": probe.continuation.strip(), "target_terms": probe.targets})
    return rows


def template_text() -> str:
    """Every fixed string the saga writes (made-up names must not hide inside it)."""
    parts = [p for pair in CHARACTER_COMPLETION.values() for p in pair]
    parts += [p for pair in CHARACTER_PROBABILITY.values() for p in pair]
    parts += list(SPELL_COMPLETION) + list(SPELL_PROBABILITY)
    parts += [p for pair in QUEST_COMPLETION + QUEST_PROBABILITY for p in pair]
    parts += [p for triple in SAGA_QA.values() for p in triple]
    parts += [line for lines in FILLER.values() for line in lines] + list(CHAPTER_TITLES.values())
    return "\n".join(parts)
