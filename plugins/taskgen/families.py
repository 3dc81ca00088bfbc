"""The procedural templates: one small instance maker per sub-variant.

A *template* is a capability (arithmetic, strings, ...) with two or more
*variants*; a variant's maker turns ``(rng, difficulty)`` into one instance
dict with ``kind`` (how it is scored, see ``scoring.py``), ``question`` and
``answer`` (plus ``options`` for knowledge questions), and where a few
steps lead to the answer, ``working``: those steps in one short line (forged
seed experts learn them with the answer; scoring ignores them). Difficulty
runs 1..5: bigger numbers, longer words and lists, more steps, harder facts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

Maker = Callable[[random.Random, int], dict]


@dataclass(frozen=True)
class Variant:
    """One sub-variant of a template: its maker and a one-line summary."""

    name: str
    summary: str
    make: Maker


@dataclass
class Template:
    """A capability and its variants, easiest variant first."""

    capability: str
    variants: dict[str, Variant] = field(default_factory=dict)


#: Every template by name, in registration order.
TEMPLATES: dict[str, Template] = {}


def _variant(template: str, capability: str, name: str, summary: str) -> Callable[[Maker], Maker]:
    def register(make: Maker) -> Maker:
        TEMPLATES.setdefault(template, Template(capability)).variants[name] = Variant(name, summary, make)
        return make

    return register


def _pick(options, d: int):
    """The difficulty-``d`` entry of a five-step knob."""
    return options[d - 1]


# --- arithmetic word problems ------------------------------------------------

_NAMES = ["Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana"]
_ITEMS = ["apples", "marbles", "stickers", "books", "coins", "pencils", "shells", "cards"]


@_variant("arith", "arithmetic", "add", "Word problems that add whole numbers (someone is given more items)")
def _arith_add(rng: random.Random, d: int) -> dict:
    top = _pick((5, 20, 100, 1000, 10000), d)
    who, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = rng.randint(2, top), rng.randint(1, top)
    question, terms = f"{who} has {a} {item} and gets {b} more.", [a, b]
    if d >= 4:
        c = rng.randint(1, top)
        question += f" Then {who} finds {c} more."
        terms.append(c)
    return {"kind": "number", "question": f"{question} How many {item} does {who} have now?", "answer": sum(terms),
            "working": f"{' + '.join(map(str, terms))} = {sum(terms)}."}


@_variant("arith", "arithmetic", "sub", "Word problems that subtract whole numbers (someone gives items away)")
def _arith_sub(rng: random.Random, d: int) -> dict:
    top = _pick((9, 20, 100, 1000, 10000), d)
    who, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a = rng.randint(top // 2 + 1, top)
    b = rng.randint(1, a // 2 if d >= 4 else a - 1)
    question, terms = f"{who} has {a} {item} and gives {b} of them away.", [a, b]
    if d >= 4:
        c = rng.randint(1, a - b - 1)
        question += f" Later {who} loses {c} more."
        terms.append(c)
    answer = a - sum(terms[1:])
    return {"kind": "number", "question": f"{question} How many {item} does {who} have left?", "answer": answer,
            "working": f"{' - '.join(map(str, terms))} = {answer}."}


@_variant("arith", "arithmetic", "mul", "Word problems that multiply (boxes holding equal numbers of items)")
def _arith_mul(rng: random.Random, d: int) -> dict:
    top = _pick((3, 9, 12, 30, 99), d)
    who, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    boxes, each = rng.randint(2, top), rng.randint(2, top)
    question = (f"{who} buys {boxes} boxes with {each} {item} in each box. "
                f"How many {item} does {who} buy in total?")
    return {"kind": "number", "question": question, "answer": boxes * each,
            "working": f"{boxes} * {each} = {boxes * each}."}


# --- string transformations --------------------------------------------------

_WORDS = (
    "cat dog sun hat pen map cup box red sky "
    "apple table house green water chair bread "
    "garden window pencil orange yellow kitchen "
    "elephant mountain sandwich umbrella birthday notebook "
    "butterfly chocolate telephone dangerous adventure beautiful"
).split()


def _spelled(word: str) -> str:
    return "'" + word + "' is spelled " + "-".join(word) + "."


def _word(rng: random.Random, d: int) -> str:
    low, high = _pick(((3, 3), (5, 5), (6, 7), (8, 8), (9, 9)), d)
    return rng.choice([w for w in _WORDS if low <= len(w) <= high])


@_variant("strings", "strings", "first-letter", "Name the first letter of a given English word")
def _first_letter(rng: random.Random, d: int) -> dict:
    word = _word(rng, d)
    return {"kind": "text", "question": f"What is the first letter of the word '{word}'?", "answer": word[0],
            "working": _spelled(word)}


@_variant("strings", "strings", "last-letter", "Name the last letter of a given English word")
def _last_letter(rng: random.Random, d: int) -> dict:
    word = _word(rng, d)
    return {"kind": "text", "question": f"What is the last letter of the word '{word}'?", "answer": word[-1],
            "working": _spelled(word)}


@_variant("strings", "strings", "reverse", "Spell a given English word backwards, letter by letter reversed")
def _reverse(rng: random.Random, d: int) -> dict:
    word = _word(rng, d)
    return {"kind": "text", "question": f"Write the word '{word}' backwards.", "answer": word[::-1],
            "working": f"{_spelled(word)} Backwards: {'-'.join(reversed(word))}."}


@_variant("strings", "strings", "count-letter", "Count how many times a letter occurs in a given English word")
def _count_letter(rng: random.Random, d: int) -> dict:
    word = _word(rng, d)
    letter = rng.choice(word)
    question = f"How many times does the letter '{letter}' appear in the word '{word}'?"
    return {"kind": "number", "question": question, "answer": word.count(letter),
            "working": f"{_spelled(word)} '{letter}' appears {word.count(letter)} times."}


# --- lists --------------------------------------------------------------------


def _numbers(rng: random.Random, d: int) -> list[int]:
    size, top = _pick(((3, 9), (4, 20), (5, 50), (7, 100), (9, 1000)), d)
    return rng.sample(range(1, top + 1), size)


def _listed(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers))


@_variant("lists", "lists", "max", "Find the largest number in a short list of whole numbers")
def _list_max(rng: random.Random, d: int) -> dict:
    numbers = _numbers(rng, d)
    return {"kind": "number", "question": f"What is the largest number in this list: {_listed(numbers)}?",
            "answer": max(numbers)}


@_variant("lists", "lists", "min", "Find the smallest number in a short list of whole numbers")
def _list_min(rng: random.Random, d: int) -> dict:
    numbers = _numbers(rng, d)
    return {"kind": "number", "question": f"What is the smallest number in this list: {_listed(numbers)}?",
            "answer": min(numbers)}


@_variant("lists", "lists", "sort", "Sort a short list of whole numbers from smallest to largest")
def _list_sort(rng: random.Random, d: int) -> dict:
    numbers = _numbers(rng, d)
    return {"kind": "list", "question": f"Sort these numbers from smallest to largest: {_listed(numbers)}.",
            "answer": sorted(numbers)}


# --- units and dates -----------------------------------------------------------

_TIME = [("weeks", "days", 7), ("days", "hours", 24), ("hours", "minutes", 60), ("minutes", "seconds", 60)]
_LENGTH = [("centimeters", "millimeters", 10), ("meters", "centimeters", 100), ("kilometers", "meters", 1000)]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _convert(rng: random.Random, d: int, units: list[tuple[str, str, int]]) -> dict:
    """Big-to-small conversions (only the first pair at difficulty 1); from 3 also small-to-big, from 5 mixed amounts."""
    big, small, factor = rng.choice(units[:1] if d == 1 else units)
    amount = rng.randint(2, _pick((3, 5, 12, 30, 60), d))
    rate = f"1 {big[:-1]} = {factor} {small}, so"
    if d >= 3 and rng.random() < 0.5:
        question = f"How many {big} are in {amount * factor} {small}?"
        answer = amount
        working = f"{rate} {amount * factor} {small} = {amount * factor} / {factor} = {answer} {big}."
    elif d >= 5:
        extra = rng.randint(1, factor - 1)
        question = f"How many {small} are in {amount} {big} and {extra} {small}?"
        answer = amount * factor + extra
        working = f"{rate} {amount} {big} and {extra} {small} = {amount} * {factor} + {extra} = {answer} {small}."
    else:
        question = f"How many {small} are in {amount} {big}?"
        answer = amount * factor
        working = f"{rate} {amount} {big} = {amount} * {factor} = {answer} {small}."
    return {"kind": "number", "question": question, "answer": answer, "working": working}


@_variant("units", "units", "time", "Convert between units of time such as weeks, days, hours, minutes and seconds")
def _units_time(rng: random.Random, d: int) -> dict:
    return _convert(rng, d, _TIME)


@_variant("units", "units", "length", "Convert between metric units of length such as kilometers, meters and centimeters")
def _units_length(rng: random.Random, d: int) -> dict:
    return _convert(rng, d, _LENGTH)


@_variant("units", "units", "weekday", "Name the day of the week a given number of days after a given weekday")
def _weekday(rng: random.Random, d: int) -> dict:
    start = rng.randrange(7)
    days = rng.randint(*_pick(((1, 1), (1, 3), (4, 13), (14, 60), (61, 400)), d))
    question = f"Today is {_DAYS[start]}. What day of the week will it be in {days} days?"
    left = days % 7
    working = f"{days} = {days // 7} * 7 + {left}, so {left} days on. " if days >= 7 else ""
    counted = [_DAYS[(start + k) % 7] for k in range(1, left + 1)]
    working += (f"Counting on from {_DAYS[start]}: {', '.join(counted)}." if counted
                else f"The same day: {_DAYS[start]}.")
    return {"kind": "text", "question": question, "answer": _DAYS[(start + days) % 7], "working": working}


# --- predicting a Python snippet's output --------------------------------------


def _snippet(code: str) -> str:
    return f"What does this Python code print?\n\n{code}"


@_variant("code", "code", "assign", "Predict what a short Python snippet of integer assignments and arithmetic prints")
def _code_assign(rng: random.Random, d: int) -> dict:
    top = _pick((5, 9, 20, 50, 100), d)
    value = rng.randint(1, top)
    lines, steps = [f"x = {value}"], [f"x = {value}"]
    for _ in range(d):
        op = rng.choice("+" if d < 3 else "+-*")
        k = rng.randint(2, 3) if op == "*" else rng.randint(1, top)
        lines.append(f"x = x {op} {k}")
        new = {"+": value + k, "-": value - k, "*": value * k}[op]
        steps.append(f"x = {value} {op} {k} = {new}")
        value = new
    return {"kind": "number", "question": _snippet("\n".join(lines + ["print(x)"])), "answer": value,
            "working": ", then ".join(steps) + "."}


@_variant("code", "code", "index", "Predict what a Python snippet that indexes into a list of integers prints")
def _code_index(rng: random.Random, d: int) -> dict:
    nums = rng.sample(range(1, _pick((10, 20, 50, 100, 100), d)), d + 2)
    if d == 1:
        i = 0
    else:
        i = rng.randrange(len(nums)) - (len(nums) if d >= 3 else 0)
    expr, answer, working = f"nums[{i}]", nums[i], f"nums[{i}] = {nums[i]}."
    if d >= 4:
        j = rng.randrange(len(nums))
        expr, answer = f"nums[{i}] + nums[{j}]", nums[i] + nums[j]
        working = f"nums[{i}] + nums[{j}] = {nums[i]} + {nums[j]} = {answer}."
    return {"kind": "number", "question": _snippet(f"nums = {nums}\nprint({expr})"), "answer": answer,
            "working": working}


@_variant("code", "code", "loop", "Predict what a Python snippet that sums numbers in a for loop prints")
def _code_loop(rng: random.Random, d: int) -> dict:
    n = rng.randint(2, _pick((3, 5, 8, 12, 20), d))
    k = rng.randint(2, 5) if d >= 3 else 1
    body = "total += i" if k == 1 else f"total += i * {k}"
    if d >= 5:
        body = f"if i % 2 == 0:\n        {body}"
    summed = [i for i in range(n) if d < 5 or i % 2 == 0]
    answer = k * sum(summed)
    working = f"total = {' + '.join(map(str, summed))} = {sum(summed)}"
    if k > 1:
        working = f"total = {k} * ({' + '.join(map(str, summed))}) = {k} * {sum(summed)} = {answer}"
    code = f"total = 0\nfor i in range({n}):\n    {body}\nprint(total)"
    return {"kind": "number", "question": _snippet(code), "answer": answer, "working": working + "."}


# --- multiple-choice general knowledge -----------------------------------------

#: (category, tier 1..3, question, correct answer, three distractors)
_FACTS = [
    ("geography", 1, "What is the capital of France?", "Paris", ["Berlin", "Madrid", "Rome"]),
    ("geography", 1, "What is the capital of Japan?", "Tokyo", ["Beijing", "Seoul", "Bangkok"]),
    ("geography", 1, "Which country is home to the city of New York?", "USA", ["Brazil", "India", "Egypt"]),
    ("geography", 1, "What is the largest ocean on Earth?", "Pacific", ["Atlantic", "Indian", "Arctic"]),
    ("geography", 1, "On which continent is Egypt?", "Africa", ["Europe", "Asia", "Australia"]),
    ("geography", 2, "What is the capital of Italy?", "Rome", ["Milan", "Venice", "Naples"]),
    ("geography", 2, "What is the longest river in South America?", "Amazon", ["Nile", "Danube", "Thames"]),
    ("geography", 2, "What is the capital of Canada?", "Ottawa", ["Toronto", "Vancouver", "Montreal"]),
    ("geography", 2, "Which is the largest continent?", "Asia", ["Africa", "Europe", "Antarctica"]),
    ("geography", 3, "What is the capital of Australia?", "Canberra", ["Sydney", "Melbourne", "Perth"]),
    ("geography", 3, "What is the capital of Turkey?", "Ankara", ["Istanbul", "Izmir", "Antalya"]),
    ("geography", 3, "Which country has the most people?", "India", ["Russia", "Japan", "Mexico"]),
    ("science", 1, "Which planet do we live on?", "Earth", ["Mars", "Venus", "Jupiter"]),
    ("science", 1, "What gas do humans need to breathe to live?", "Oxygen", ["Helium", "Neon", "Argon"]),
    ("science", 1, "What is frozen water called?", "Ice", ["Steam", "Sand", "Salt"]),
    ("science", 1, "Which star gives Earth its daylight?", "Sun", ["Moon", "Sirius", "Polaris"]),
    ("science", 1, "How many legs does a spider have?", "Eight", ["Six", "Four", "Ten"]),
    ("science", 2, "Which is the largest planet in the solar system?", "Jupiter", ["Mars", "Mercury", "Venus"]),
    ("science", 2, "What gas do plants take in from the air?", "Carbon dioxide", ["Oxygen", "Hydrogen", "Helium"]),
    ("science", 2, "At what temperature in Celsius does water boil at sea level?", "100", ["50", "80", "212"]),
    ("science", 2, "Which organ pumps blood around the body?", "Heart", ["Lungs", "Liver", "Brain"]),
    ("science", 3, "What is the chemical symbol for gold?", "Au", ["Ag", "Gd", "Go"]),
    ("science", 3, "Which planet is closest to the Sun?", "Mercury", ["Venus", "Mars", "Earth"]),
    ("science", 3, "What is the hardest natural material?", "Diamond", ["Granite", "Iron", "Quartz"]),
    ("everyday", 1, "How many days are in a week?", "Seven", ["Five", "Six", "Ten"]),
    ("everyday", 1, "What color is the sky on a clear day?", "Blue", ["Green", "Red", "Purple"]),
    ("everyday", 1, "Which animal says 'meow'?", "Cat", ["Dog", "Cow", "Duck"]),
    ("everyday", 1, "What do bees make?", "Honey", ["Milk", "Silk", "Wool"]),
    ("everyday", 1, "Which fruit is yellow and curved?", "Banana", ["Apple", "Grape", "Cherry"]),
    ("everyday", 2, "How many months are in a year?", "Twelve", ["Ten", "Eleven", "Fourteen"]),
    ("everyday", 2, "What is a baby dog called?", "Puppy", ["Kitten", "Calf", "Foal"]),
    ("everyday", 2, "How many sides does a triangle have?", "Three", ["Four", "Five", "Six"]),
    ("everyday", 2, "Which season comes after winter?", "Spring", ["Summer", "Autumn", "Fall"]),
    ("everyday", 3, "How many minutes are in a full day?", "1440", ["1200", "1000", "2400"]),
    ("everyday", 3, "Which instrument has 88 keys?", "Piano", ["Guitar", "Violin", "Flute"]),
    ("everyday", 3, "How many players are on a soccer team on the field?", "Eleven", ["Nine", "Ten", "Twelve"]),
]
_LETTERS = "ABCD"


def _fact(rng: random.Random, category: str, d: int) -> dict:
    """Tiers 1..3 as multiple choice at difficulty 1..3; from 4, tier 2-3 answered without options."""
    tiers = _pick(({1}, {2}, {3}, {2, 3}, {3}), d)
    _, _, question, answer, distractors = rng.choice([f for f in _FACTS if f[0] == category and f[1] in tiers])
    options = [answer, *distractors]
    rng.shuffle(options)
    if d >= 4:
        return {"kind": "recall", "question": question, "answer": answer, "options": options}
    listed = "\n".join(f"{letter}) {option}" for letter, option in zip(_LETTERS, options))
    return {"kind": "choice", "question": f"{question}\n{listed}",
            "answer": _LETTERS[options.index(answer)], "options": options}


@_variant("knowledge", "knowledge", "everyday", "Multiple-choice questions on everyday facts about animals, time and objects")
def _everyday(rng: random.Random, d: int) -> dict:
    return _fact(rng, "everyday", d)


@_variant("knowledge", "knowledge", "geography", "Multiple-choice questions on world geography: capitals, continents, oceans")
def _geography(rng: random.Random, d: int) -> dict:
    return _fact(rng, "geography", d)


@_variant("knowledge", "knowledge", "science", "Multiple-choice questions on basic science: planets, the body, chemistry")
def _science(rng: random.Random, d: int) -> dict:
    return _fact(rng, "science", d)


def make_instances(template: str, variant: str, difficulty: int, seed: int, count: int) -> dict[str, dict]:
    """``count`` instances keyed "1", "2", ...; distinct questions where the template allows."""
    rng, make = random.Random(seed), TEMPLATES[template].variants[variant].make
    instances: list[dict] = []
    for _ in range(count):
        for _attempt in range(20):
            instance = make(rng, difficulty)
            if all(instance["question"] != seen["question"] for seen in instances):
                break
        instances.append(instance)
    return {str(i): instance for i, instance in enumerate(instances, start=1)}
