"""The strings the document promises for a lenient integer field are ones the request decoder
(msgspec's lax conversion) takes, as the integer they spell: spellings with a fraction or an
exponent are read as a float and refused past 2**53, so the document promises them up to 15
digits only. Digits alone are taken at any length, and promised so."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
import pytest

from gateway.api.openapi_inputs import integer_words

# Past 2**53 with a fraction or an exponent: refused by the decoder, so not documented.
REFUSED_PAST_FLOATS = ("9007199254740994.0", "1e16", "1E+20", "99999999999999999.0", "9e15e0")


def decoded(text: str, minimum: int | None) -> int | None:
    """What the server's decoder makes of `text` for an integer field (None: refused)."""
    kind: Any = int if minimum is None else Annotated[int, msgspec.Meta(ge=minimum)]
    try:
        value: int = msgspec.convert({"n": text}, dict[str, kind], strict=False)["n"]
        return value
    except msgspec.ValidationError:
        return None


VALUES = (0, 1, 2, 3, 9, 10, 12, 99, 10**6, 10**14, 10**15 - 1, 10**15, 2**53, 2**53 + 2)


def spellings() -> list[tuple[str, int | None]]:
    """(string, the integer it spells, if it spells one) across the bounds at 10**15 and
    2**53: digits, zero fractions, exponents with and without signs and leading zeros."""
    out: list[tuple[str, int | None]] = []
    for value in VALUES:
        digits = str(value).rstrip("0") or "0"
        scale = len(str(value)) - len(digits)
        forms = {str(value), f"{value}.0", f"{value}e0", f"{digits}e{scale}"}
        forms |= {f"{digits}.00E+{scale}", f"{digits}e0{scale}"}
        for sign in ("", "-"):
            out += [(sign + form, -value if sign else value) for form in forms]
    out += [(text, None) for text in REFUSED_PAST_FLOATS]
    out += [(text, None) for text in ("03", "+3", "1.5", "1e-1", " 3", "", "1e", ".5", "1.")]
    return out


@pytest.mark.parametrize("minimum", [None, 1, 3])
def test_documented_strings_are_taken_as_what_they_spell(minimum: int | None) -> None:
    pattern = re.compile(f"^(?:{integer_words(minimum)})$")
    for text, value in spellings():
        documented, taken = bool(pattern.match(text)), decoded(text, minimum)
        if documented:
            assert taken is not None and taken == value, (text, minimum)
        fits = value is not None and (minimum is None or value >= minimum)
        within = fits and (text.lstrip("-").isdigit() or abs(value or 0) < 10**15)
        if taken is not None and within:
            assert documented, (text, minimum)


@pytest.mark.parametrize("minimum", [None, 1])
def test_float_spellings_past_2_to_the_53_are_not_documented(minimum: int | None) -> None:
    pattern = re.compile(f"^(?:{integer_words(minimum)})$")
    for text in REFUSED_PAST_FLOATS:
        assert decoded(text, minimum) is None, text
        assert not pattern.match(text), text
    assert pattern.match("99999999999999999999") and decoded("99999999999999999999", minimum)
    assert pattern.match("999999999999999.0") and pattern.match("1e14")
