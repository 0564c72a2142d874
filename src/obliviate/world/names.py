"""Seeded, pronounceable, made-up names that never collide.

Every name in a world comes from one ``NameForge``. Its registry keeps the names
*substring-free*: no name occurs inside another name, inside a reserved word (the
value pools, the generic story vocabulary) or inside the template text. That is
what lets exact-answer accuracy test ``value in generated_text`` without a wrong
answer such as "Kestra" counting as the right answer "Kest", and what keeps a
value occurring exactly once in the answer sentence that states it.
"""

from __future__ import annotations

import random
from typing import Iterable

# Syllable inventories. Onsets and codas avoid letter runs that read as English words.
ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr",
          "tr", "th", "st", "sk", "vr", "h", "j", "w", "sl", "fr", "pr", "kl")
# simple vowels dominate; a few diphthongs give colour without making names long
VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "a", "e", "o", "ae", "ia", "ou", "y")
CODAS = ("", "", "", "", "n", "r", "l", "s", "th", "nd", "rk", "st", "x", "m", "ll", "rn", "v")
MALE_ENDINGS = ("n", "r", "k", "s", "l", "th", "nd", "rin", "ric", "ven", "dor", "mar", "an", "el")
FEMALE_ENDINGS = ("a", "e", "ia", "ine", "ella", "ira", "wen", "ys", "ara", "eth", "ena", "isse")
# longest name per style: short names mean few BPE tokens, which tiny models learn faster
MAX_LENGTH = {"first": 8, "surname": 9, "city": 8, "country": 10, "language": 10, "currency": 8, "place": 8,
              "spell": 9, "school": 10, "town": 10, "sport": 9, "ball": 8, "pet": 7}

# Endings that give each kind of name its own look.
STYLE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "surname": ("", "", "ov", "ett", "ard", "wick", "ley", "ton", "mere", "dahl", "sen", "hart"),
    "city": ("holm", "esk", "mor", "ara", "ith", "ven", "dal", "port", "ane", "ost"),
    "country": ("ia", "ora", "avia", "enne", "and", "orra", "ica"),
    "language": ("ish", "ese", "ic", "ari", "otic", "eni"),
    "currency": ("el", "ar", "et", "ine", "ot", "ale"),
    "place": ("", "ith", "mere", "or", "ell", "oth"),
    "spell": ("us", "ora", "ix", "ium", "enta", "ara", "ivo", "ento", "ax"),
    "school": ("moor", "hall", "wick", "ford", "crest", "vale"),
    "town": ("ton", "by", "field", "bury", "stead", "ham"),
    "sport": ("ball", "vault", "crest", "flight"),
    "ball": ("et", "in", "ette", "ock"),
    "pet": ("", "o", "y", "ie", "et"),
}


def _syllable(rng: random.Random, coda: bool = True) -> str:
    return rng.choice(ONSETS) + rng.choice(VOWELS) + (rng.choice(CODAS) if coda else "")


def _has_ugly_cluster(word: str) -> bool:
    # three consonants or three vowels in a row are hard to say; "yy", "ww" look odd
    vowels = set("aeiouy")
    for digraph, single in (("th", "T"), ("sh", "S"), ("ch", "C")):
        word = word.replace(digraph, single)  # a digraph is one sound
    run_c = run_v = 0
    for ch in word:
        if ch in vowels:
            run_v, run_c = run_v + 1, 0
        else:
            run_c, run_v = run_c + 1, 0
        if run_c >= 3 or run_v >= 3:
            return True
    return any(pair in word for pair in ("yy", "ww", "jj", "hh", "yi", "iy", "uu", "ii"))


class NameForge:
    """Draws names of a given style from ``rng`` and registers them (substring-free)."""

    def __init__(self, rng: random.Random, reserved_words: Iterable[str] = (), reserved_text: str = ""):
        self.rng = rng
        self._names: set[str] = set()  # lower-cased registered names (membership only)
        self._fragments: set[str] = set()  # every substring of every registered name
        self._reserved_text = reserved_text.lower()
        for word in reserved_words:
            self.register(word)

    # -- registry -------------------------------------------------------------------
    def _conflicts(self, word: str) -> bool:
        low = word.lower()
        if low in self._fragments or low in self._reserved_text:
            return True  # equal to / inside a registered name, or inside template text
        n = len(low)
        return any(low[i:j] in self._names for i in range(n) for j in range(i + 1, n + 1))

    def register(self, word: str) -> None:
        low = word.lower()
        self._names.add(low)
        n = len(low)
        self._fragments.update(low[i:j] for i in range(n) for j in range(i + 1, n + 1))

    def available(self, word: str) -> bool:
        return not self._conflicts(word)

    def claim(self, make, max_length: int = 14, attempts: int = 20000, pronounceable: bool = True) -> str:
        """Call ``make()`` until it returns a free word; register and return it."""
        for _ in range(attempts):
            word = make()
            if not 4 <= len(word) <= max_length or (pronounceable and _has_ugly_cluster(word.lower())):
                continue
            if not self._conflicts(word):
                self.register(word)
                return word
        raise RuntimeError("name space exhausted: too many names for the syllable inventory")

    # -- styles ---------------------------------------------------------------------
    def root(self, syllables: int = 2) -> str:
        rng = self.rng
        parts = [_syllable(rng) for _ in range(syllables - 1)] + [_syllable(rng, coda=rng.random() < 0.5)]
        return "".join(parts)

    def first_name(self, gender: str) -> str:
        """Two open syllables and a gendered ending: "Dorin", "Kaveth", "Morava"."""
        endings = FEMALE_ENDINGS if gender == "female" else MALE_ENDINGS
        rng = self.rng

        def make() -> str:
            second = _syllable(rng, coda=False) if rng.random() < 0.6 else ""
            return (_syllable(rng, coda=False) + second + rng.choice(endings)).capitalize()

        return self.claim(make, MAX_LENGTH["first"])

    def styled(self, style: str, syllables: int = 2, capitalize: bool = True) -> str:
        suffixes = STYLE_SUFFIXES[style]

        def make() -> str:
            word = self.root(syllables) + self.rng.choice(suffixes)
            return word.capitalize() if capitalize else word

        return self.claim(make, MAX_LENGTH[style])

    def surname(self) -> str:
        return self.styled("surname", syllables=self.rng.choice((1, 2)))

    def compound(self, heads: tuple[str, ...], tails: tuple[str, ...]) -> str:
        """A lower-case compound like "gloomwisp" (creatures)."""
        return self.claim(lambda: self.rng.choice(heads) + self.rng.choice(tails), pronounceable=False)
