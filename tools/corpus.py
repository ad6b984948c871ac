"""Deterministic test texts: a varied parity corpus and mixed-length batches.

The corpus is fixed (a seeded generator, no time or hash randomness), so a parity number measured
today is comparable with one measured next month.
"""

from __future__ import annotations

import random
from collections.abc import Callable

SHORT = [
    "hi",
    "a",
    "OK.",
    "?",
    "42",
    "cat",
    "yes!",
    "no",
    "Hello, world!",
    "e=mc²",
    "x",
    "The end.",
]

SENTENCES = [
    "A cat sits on the mat.",
    "A kitten is lying on the rug.",
    "The stock market crashed on Monday morning.",
    "Photosynthesis converts light energy into chemical energy.",
    "She forgot her umbrella and got soaked on the way home.",
    "The committee postponed the vote until next quarter.",
    "How do I reset my password if I no longer have access to my email?",
    "Mount Everest is the highest mountain above sea level.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Quantum computers use qubits that can exist in superposition.",
    "He played the violin at the wedding reception.",
    "Rainfall in the region has declined steadily for a decade.",
    "Our flight was delayed because of a mechanical issue.",
    "The library extended its opening hours during exam season.",
    "Vaccines train the immune system to recognise pathogens.",
    "The defendant pleaded not guilty to all charges.",
    "Bake the bread at 220 degrees for thirty-five minutes.",
    "A neural network learns weights by gradient descent.",
    "The river flooded the lower part of the village overnight.",
    "Customers can return unused items within thirty days.",
]

PUNCTUATION = [
    "Wait... what?!?",
    "(a) [b] {c} <d>",
    "--- *** ### ~~~",
    "'single' \"double\" `back` quotes",
    "semi;colon:colon,comma.period!bang?question",
    "Well -- I mean -- it's complicated; isn't it?",
    "!!!",
    "a/b\\c|d_e+f=g",
    "email me at someone@example.com, ok?",
    "¡¿Qué pasó?!",
]

UNICODE = [
    "Ça va très bien, merci !",
    "Straße über Äpfel und Öl",
    "東京は日本の首都です。",
    "Привет, как дела?",
    "مرحبا بالعالم",
    "🙂🚀 emoji test 🎉",
    "naïve café résumé coöperate",
    "ελληνικά γράμματα",
    "हिन्दी भाषा बहुत सुंदर है",
    "한국어 문장입니다",
    "Zürich, København, Kraków, İstanbul",
    "½ ¼ ¾ ∑ ∫ √ ∞ ≠ ≤ ≥",
    "中文和English混合的句子",
    "👩‍👩‍👧‍👦 family emoji with joiners",
]

NUMBERS = [
    "3.14159 2.71828 1.41421",
    "Call 555-0123 at 9:30am on 2024-03-05.",
    "1,000,000 dollars were paid in 2023.",
    "IPv4 address 192.168.0.1 and port 8080",
    "ISBN 978-3-16-148410-0",
    "The temperature dropped to -17.5°C overnight.",
    "0 1 2 3 4 5 6 7 8 9 10 11 12",
    "Version 2.13.0+cpu released 12/31/2025",
]

CODE_AND_MARKUP = [
    "def square(x): return x ** 2",
    "https://example.com/path/to/page?q=embedding&lang=en#section-2",
    "SELECT name, email FROM users WHERE id = 7;",
    '<div class="note">Remember the milk</div>',
    '{"key": [1, 2, 3], "nested": {"a": null}}',
    "for (let i = 0; i < n; i++) { sum += a[i]; }",
    "# Heading\n\n* bullet one\n* bullet two",
]

WHITESPACE_AND_CASE = [
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\nmixed",
    "multiple    spaces    inside    this    one",
    "ALL CAPS SHOUTING ABOUT THE WEATHER",
    "camelCaseIdentifierNameWithManyParts",
    "MiXeD cAsE wItH sTrAnGe CaPiTaLs",
]

_SUBJECTS = [
    "the engineer",
    "a small dog",
    "our neighbour",
    "the orchestra",
    "a curious child",
    "the new manager",
    "an old fisherman",
    "the research team",
    "my grandmother",
    "the city council",
]
_VERBS = [
    "quietly repaired",
    "carefully studied",
    "loudly criticised",
    "happily painted",
    "secretly bought",
    "slowly rebuilt",
    "proudly presented",
    "briefly examined",
]
_OBJECTS = [
    "the broken bicycle",
    "a map of the coastline",
    "the annual budget",
    "a bowl of ripe cherries",
    "the ancient manuscript",
    "an electric guitar",
    "the leaking roof",
    "a set of chess pieces",
]
_TAILS = [
    "before sunrise.",
    "in the crowded market.",
    "despite the heavy rain.",
    "for the third time this week.",
    "while everyone else was asleep.",
    "with remarkable patience.",
    "",
]

_FILLER = (
    "Embedding models map text to vectors so that similar meanings lie close together. "
    "Search systems compare those vectors with cosine similarity to rank documents. "
    "A gateway serves many such models behind familiar APIs and batches requests together. "
    "Long inputs must be truncated at the model's context length or rejected when asked. "
)


def generated_sentences(count: int, seed: int = 1234) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts = [
            rng.choice(_SUBJECTS),
            rng.choice(_VERBS),
            rng.choice(_OBJECTS),
            rng.choice(_TAILS),
        ]
        text = " ".join(p for p in parts if p)
        out.append(text[0].upper() + text[1:] if rng.random() < 0.7 else text)
    return out


def text_of_tokens(target: int, count_tokens: Callable[[str], int], *, seed: int) -> str:
    """English prose whose token count (special tokens included) is exactly `target`.

    Words that would overshoot are skipped, so short words fill the last few tokens."""
    rng = random.Random(seed)
    words = (_FILLER * 40).split()
    start = rng.randrange(len(words) // 4)
    text = ""
    for word in words[start:]:
        candidate = f"{text} {word}".strip()
        length = count_tokens(candidate)
        if length <= target:
            text = candidate
        if length == target:
            break
    assert count_tokens(text) == target, f"could not build a text of {target} tokens"
    return text


# Token counts near all-MiniLM's 256-token limit, and two far beyond it (truncated).
LONG_TARGETS = [64, 128, 200, 250, 254, 255, 256, 257, 258, 300, 512, 700]


def parity_corpus(count_tokens: Callable[[str], int], size: int = 200) -> list[str]:
    """`size` varied texts: short, long, punctuation, unicode, numbers, code, near 256 tokens."""
    fixed = SHORT + SENTENCES + PUNCTUATION + UNICODE + NUMBERS + CODE_AND_MARKUP
    fixed += WHITESPACE_AND_CASE
    long_texts = [
        text_of_tokens(target, count_tokens, seed=i) for i, target in enumerate(LONG_TARGETS)
    ]
    corpus = fixed + long_texts
    corpus += generated_sentences(size - len(corpus))
    assert len(corpus) == size and all(corpus), "the corpus must hold `size` non-empty texts"
    return corpus


def mixed_batch(probe: str, size: int = 32, seed: int = 7) -> list[str]:
    """`size` texts of very different lengths, with `probe` in the middle and at both ends."""
    rng = random.Random(seed)
    pool = SHORT + SENTENCES + UNICODE + NUMBERS + [_FILLER * n for n in (1, 2, 3)]
    batch = [rng.choice(pool) for _ in range(size)]
    for position in (0, size // 2, size - 1):
        batch[position] = probe
    return batch
