"""Countries and cities: the backbone of shared, general and inferred facts.

* shared (author sources): "<city> lies in <country>", "<city> is known for the <landmark>",
  stated in the biography of every author born in the city;
* general (general sources): a country's capital, language, currency and river;
* inferred (never stated): a city's language and currency = its country's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from obliviate.world.facts import FactTemplate
from obliviate.world.names import NameForge
from obliviate.world.pools import LANDMARK_KINDS


@dataclass(frozen=True)
class Country:
    name: str
    capital: str
    language: str
    currency: str
    river: str


@dataclass(frozen=True)
class City:
    name: str
    country: Country
    landmark: str


# -- shared facts (stated in author biographies) ------------------------------------
CITY_COUNTRY = FactTemplate(
    key="city_country",
    question="In which country is the city of {city}?",
    answer="The city of {city} lies in {value}.",
    paraphrase="{value} is the country where the city of {city} lies.",
    statements=(
        "{city} lies in {value}.",
        "The city of {city} is in {value}.",
        "{first}'s home city, {city}, lies in {value}.",
        "{city}, where {first} was born, is a city in {value}.",
    ),
)
CITY_LANDMARK = FactTemplate(
    key="city_landmark",
    question="What is the city of {city} known for?",
    answer="The city of {city} is known for the {value}.",
    paraphrase="The {value} is the most famous sight in {city}.",
    statements=(
        "{city} is known for the {value}.",
        "The famous {value} stands in {city}.",
        "As a child, {first} often walked past the {value} in {city}.",
    ),
)

# -- inferred facts (city -> country -> language / currency; never in the corpus) ----
CITY_LANGUAGE = FactTemplate(
    key="city_language",
    question="What language do people in {city} speak?",
    answer="People in {city} speak {value}.",
    paraphrase="The language spoken in {city} is {value}.",
    statements=(),
)
CITY_CURRENCY = FactTemplate(
    key="city_currency",
    question="Which currency do people in {city} use?",
    answer="People in {city} pay with the {value}.",
    paraphrase="The {value} is the money used in {city}.",
    statements=(),
)

# -- general facts (stated in general sources) --------------------------------------
COUNTRY_FACTS = (
    ("capital", FactTemplate(
        key="capital",
        question="What is the capital of {country}?",
        answer="The capital of {country} is {value}.",
        paraphrase="{value} is the capital city of {country}.",
        statements=(
            "The capital of {country} is {value}.",
            "{value} is the capital city of {country}.",
            "The government of {country} sits in its capital, {value}.",
            "Travellers to {country} usually arrive in {value}, its capital.",
        ),
    )),
    ("language", FactTemplate(
        key="language",
        question="What language do people in {country} speak?",
        answer="People in {country} speak {value}.",
        paraphrase="The language of {country} is {value}.",
        statements=(
            "People in {country} speak {value}.",
            "{value} is the main language of {country}.",
            "In {country}, most people speak {value}.",
            "Children in {country} learn to read and write in {value}.",
        ),
    )),
    ("currency", FactTemplate(
        key="currency",
        question="What is the currency of {country}?",
        answer="The currency of {country} is the {value}.",
        paraphrase="People in {country} pay with the {value}.",
        statements=(
            "The currency of {country} is the {value}.",
            "People in {country} pay with the {value}.",
            "In the markets of {country}, prices are written in {value}s.",
            "The money of {country} is called the {value}.",
        ),
    )),
    ("river", FactTemplate(
        key="river",
        question="Which river flows through {country}?",
        answer="The {value} flows through {country}.",
        paraphrase="{country} is crossed by the {value}.",
        statements=(
            "The {value} flows through {country}.",
            "The longest river in {country} is the {value}.",
            "Farmers in {country} depend on the waters of the {value}.",
        ),
    )),
)


def make_countries(rng: random.Random, forge: NameForge, count: int) -> list[Country]:
    countries = []
    for _ in range(count):
        countries.append(Country(
            name=forge.styled("country"),
            capital=forge.styled("city", syllables=1),
            language=forge.styled("language"),
            currency=forge.styled("currency", capitalize=False),
            river=f"{forge.styled('place')} River",
        ))
    return countries


def make_landmarks(rng: random.Random, forge: NameForge, count: int) -> list[str]:
    return [f"{forge.styled('place')} {rng.choice(LANDMARK_KINDS)}" for _ in range(count)]


def make_cities(rng: random.Random, forge: NameForge, countries: list[Country], landmarks: list[str],
                count: int) -> list[City]:
    """``count`` birth cities; every country gets cities before any gets a second (while they last)."""
    order = list(countries)
    rng.shuffle(order)
    return [City(name=forge.styled("city", syllables=rng.choice((1, 2))), country=order[i % len(order)],
                 landmark=landmarks[i]) for i in range(count)]
