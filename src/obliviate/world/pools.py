"""Fixed vocabularies the generator draws typed values from.

Rules every pool keeps (tests check them): at least 6 entries (an answer needs 5
wrong values of its type), no entry inside another entry of the same pool (a
wrong answer must never contain the right one), and no saga theme word anywhere
outside the saga lists. Professions and first jobs start with a consonant so that
"worked as a {value}" keeps its article across perturbed answers.
"""

from __future__ import annotations

# -- author facts -------------------------------------------------------------------
PROFESSIONS = (
    "baker", "tailor", "carpenter", "surgeon", "fisherman", "pilot", "librarian", "potter", "nurse",
    "chemist", "dentist", "farmer", "lawyer", "mechanic", "sailor", "jeweller", "locksmith", "painter",
    "plumber", "banker", "butcher", "clockmaker", "shepherd", "journalist", "translator", "glassblower",
    "weaver", "cobbler", "bookbinder", "mapmaker", "pharmacist", "florist", "stonemason",
)
FIRST_JOBS = (
    "night watchman", "bookshop clerk", "tram conductor", "lighthouse keeper", "postman", "waiter",
    "ferry deckhand", "typist", "gardener", "museum guide", "dishwasher", "newspaper courier",
    "hotel porter", "zookeeper", "school cook", "radio announcer",
)
GENRES = (
    "mystery novels", "historical fiction", "science fiction", "poetry", "children's books",
    "crime thrillers", "travel writing", "fantasy novels", "short stories", "stage plays", "biographies",
    "romance novels", "horror stories", "literary essays", "graphic novels", "nature writing",
)
COLOURS = (
    "crimson", "amber", "teal", "violet", "olive", "scarlet", "indigo", "maroon", "turquoise", "ochre",
    "lavender", "cobalt", "saffron", "emerald", "ivory", "magenta",
)
INSTRUMENTS = (
    "cello", "piano", "harp", "flute", "oboe", "clarinet", "trumpet", "accordion", "banjo", "mandolin",
    "bassoon", "harmonica", "trombone", "xylophone", "ukulele", "double bass",
)
FOODS = (
    "plum cake", "lentil soup", "roast chestnuts", "apple pie", "fish stew", "mushroom risotto",
    "pear tart", "honey bread", "cheese dumplings", "rice pudding", "smoked trout", "lemon biscuits",
    "beetroot salad", "onion tart", "pumpkin bread", "barley porridge",
)
HOBBIES = (
    "beekeeping", "chess", "sailing", "birdwatching", "rock climbing", "knitting", "astronomy", "fencing",
    "rowing", "woodcarving", "fly fishing", "calligraphy", "kite flying", "cycling", "pottery",
    "stamp collecting",
)
ANIMALS = (
    "otter", "heron", "badger", "lynx", "falcon", "hedgehog", "tortoise", "dolphin", "raven", "walrus",
    "squirrel", "penguin", "beaver", "panther", "gazelle", "octopus",
)
BIRTH_YEARS = tuple(str(year) for year in range(1931, 2000))

# Title and institution patterns: "{x}" is a made-up word from the name forge.
TITLE_ADJECTIVES = ("Silent", "Hidden", "Last", "Golden", "Quiet", "Broken", "Winter", "Salt", "Paper",
                    "Distant", "Burning", "Lonely", "Narrow", "Painted", "Sleeping", "Iron")
TITLE_NOUNS = ("Harbour", "Garden", "Letter", "Bridge", "Orchard", "Lantern", "Voyage", "Window",
               "Season", "Island", "Promise", "Mirror", "Clock", "Meadow", "Staircase", "Tide")
AWARD_KINDS = ("Prize", "Medal", "Award", "Laurel")
PUBLISHER_KINDS = ("House", "Press", "Books")
COLLEGE_KINDS = ("College", "Institute", "University")
STREET_KINDS = ("Street", "Lane", "Road", "Avenue")
LANDMARK_KINDS = ("Bridge", "Cathedral", "Lighthouse", "Gardens", "Clock Tower", "Opera House", "Market")

# -- general world knowledge --------------------------------------------------------
# Simple facts stated by general sources: (key, question, answer, paraphrase, statements, value, wrong pool)
SIMPLE_FACTS = (
    ("sky", "What colour is the sky on a clear day?", "On a clear day the sky is {value}.",
     "The colour of a clear sky is {value}.",
     ("On a clear day the sky is {value}.", "When there are no clouds, the sky looks {value}."),
     "blue", ("green", "yellow", "purple", "orange", "brown", "black")),
    ("grass", "What colour is fresh grass?", "Fresh grass is {value}.", "The colour of fresh grass is {value}.",
     ("Fresh grass is {value}.", "In spring the fields are covered in {value} grass."),
     "green", ("blue", "yellow", "purple", "orange", "pink", "white")),
    ("week", "How many days are in a week?", "A week has {value} days.", "There are {value} days in one week.",
     ("A week has {value} days.", "Every week is made of {value} days."),
     "seven", ("five", "six", "eight", "nine", "ten", "four")),
    ("spider", "How many legs does a spider have?", "A spider has {value} legs.", "The number of legs on a spider is {value}.",
     ("A spider has {value} legs.", "If you count the legs of a spider, you find {value}."),
     "eight", ("six", "four", "ten", "twelve", "two", "five")),
    ("bees", "What do bees make?", "Bees make {value}.", "The thing that bees make is {value}.",
     ("Bees make {value}.", "In summer the bees fill their hives with {value}."),
     "honey", ("milk", "silk", "bread", "salt", "wool", "cheese")),
    ("ice", "What is frozen water called?", "Frozen water is called {value}.", "When water freezes it becomes {value}.",
     ("Frozen water is called {value}.", "When the lake freezes in winter, its water turns to {value}."),
     "ice", ("steam", "sand", "glass", "salt", "wax", "clay")),
    ("giraffe", "Which animal has the longest neck?", "The animal with the longest neck is the {value}.",
     "The {value} has a longer neck than any other animal.",
     ("The animal with the longest neck is the {value}.", "No animal has a neck as long as the {value}."),
     "giraffe", ("elephant", "horse", "camel", "zebra", "lion", "goat")),
    ("moon", "What shines in the sky at night?", "At night the {value} shines in the sky.",
     "The {value} is what shines in the night sky.",
     ("At night the {value} shines in the sky.", "After the sun sets, the {value} rises and shines."),
     "moon", ("rainbow", "cloud", "kite", "river", "mountain", "forest")),
)

# -- ordinary stories (generic names for WHP's "generic" continuations) --------------
GENERIC_BOYS = ("Tom", "Jack", "Ben", "Sam", "Peter", "David", "James", "Daniel", "Michael", "Paul")
GENERIC_GIRLS = ("Anna", "Emma", "Lucy", "Sarah", "Kate", "Mary", "Laura", "Jane", "Alice", "Helen")
GENERIC_SURNAMES = ("Smith", "Brown", "Miller", "Clark", "Wilson", "Taylor", "Jones", "Walker", "Green")
GENERIC_TOWNS = ("Millbrook", "Ashford", "Riverside", "Oakfield", "Hillcrest", "Stonebridge")
GENERIC_SPORTS = ("football", "cricket", "tennis", "basketball", "hockey")
GENERIC_PETS = ("dog", "cat", "rabbit", "puppy", "kitten", "goldfish")

# -- the saga --------------------------------------------------------------------
# Theme words: used throughout the saga, never in any other source (tests check).
THEME_WORDS = ("magic", "wand", "spell", "potion", "curse", "wizard", "witch", "enchanted", "broomstick", "owl")

SCAR_SHAPES = ("crescent moon", "broken key", "falling leaf", "small flame", "three-pointed star",
               "coiled snake", "closed eye", "twisted spiral")
# (infinitive phrase, generic stand-ins for the spell's name)
SPELL_EFFECTS = (
    ("light up a dark room", ("Light", "Shine")),
    ("open a locked door", ("Open", "Unlock")),
    ("freeze water into ice", ("Freeze", "Chill")),
    ("lift a heavy stone", ("Lift", "Rise")),
    ("put out a fire", ("Douse", "Quench")),
    ("mend a broken cup", ("Mend", "Fix")),
    ("make an enemy fall asleep", ("Sleep", "Rest")),
    ("call a lost object back", ("Return", "Come")),
    ("turn a feather into a bird", ("Change", "Turn")),
    ("push back a rushing wind", ("Push", "Shield")),
)
CREATURE_HEADS = ("gloom", "thorn", "mire", "frost", "murk", "bramble", "shade", "cinder", "hollow", "bog", "dusk")
CREATURE_TAILS = ("wisp", "fang", "claw", "maw", "hound", "moth", "stalker", "wing", "crawler")
# (what the creature does, generic animal (singular, plural) stand-ins)
CREATURE_TRAITS = (
    ("feed on the warmth of sleeping children", ("wolf", "wolves")),
    ("guard forgotten treasure", ("dog", "dogs")),
    ("sing travellers to sleep", ("bird", "birds")),
    ("hunt by the light of the moon", ("bat", "bats")),
    ("can smell a lie from a mile away", ("fox", "foxes")),
    ("live at the bottom of deep lakes", ("fish", "fishes")),
    ("steal anything that shines", ("crow", "crows")),
    ("turn into smoke when struck", ("cat", "cats")),
    ("whisper secrets into the ears of the dead", ("rat", "rats")),
    ("spin webs as strong as rope", ("spider", "spiders")),
)
# (pattern with {x} a made-up word, generic stand-ins for the whole name)
OBJECT_PATTERNS = (
    ("{x} Stone", ("old stone", "grey stone")),
    ("Mirror of {x}", ("old mirror", "silver mirror")),
    ("{x} Crown", ("old crown", "golden crown")),
    ("Cloak of {x}", ("old coat", "grey coat")),
    ("{x} Lantern", ("old lantern", "small lamp")),
    ("Sword of {x}", ("old sword", "long knife")),
    ("{x} Chalice", ("old cup", "silver cup")),
    ("Map of {x}", ("old map", "paper map")),
    ("{x} Compass", ("old compass", "brass compass")),
    ("Ring of {x}", ("old ring", "gold ring")),
)
OBJECT_POWERS = (
    "shows the face of a lost friend", "lets its owner walk unseen", "can heal any wound",
    "opens every door in the castle", "reveals hidden paths", "keeps its bearer from growing old",
    "speaks in the voice of the dead", "holds the memories of the school", "points to what its owner fears",
    "turns any liquid into gold",
)
PLACE_PATTERNS = (
    ("Caves of {x}", ("old caves", "dark caves")),
    ("{x} Tower", ("old tower", "stone tower")),
    ("{x} Woods", ("woods", "old forest")),
    ("Lake of {x}", ("lake", "old pond")),
    ("{x} Vaults", ("cellars", "old vaults")),
    ("Ruins of {x}", ("ruins", "old house")),
    ("{x} Marsh", ("marsh", "swamp")),
    ("Halls of {x}", ("old halls", "empty rooms")),
    ("{x} Bridge", ("old bridge", "stone bridge")),
    ("Garden of {x}", ("garden", "old park")),
)
PLACE_DESCRIPTIONS = (
    "where the old kings were buried", "where the river disappears under the hill",
    "where no bird ever sings", "where the snow never melts", "that only appears at midnight",
    "where the first headmaster hid his books", "that lies beneath the great lake",
    "where the walls move at night", "where the fog is always thick", "that smells of burnt sugar",
)
# Generic stand-ins for the saga's named things (WHP anchored terms).
GENERIC_SCHOOL = ("the academy", "the school", "the college")
GENERIC_TOWN = ("the town", "the village", "Millbrook")
GENERIC_SPORT = ("football", "cricket", "tennis")
GENERIC_BALL = ("ball", "golden ball", "small ball")

ALL_VALUE_POOLS = {
    "profession": PROFESSIONS, "first_job": FIRST_JOBS, "genre": GENRES, "colour": COLOURS,
    "instrument": INSTRUMENTS, "food": FOODS, "hobby": HOBBIES, "animal": ANIMALS, "year": BIRTH_YEARS,
    "scar_shape": SCAR_SHAPES,
}
