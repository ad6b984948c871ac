"""Parsing of durations (Go's time.ParseDuration, as Ollama uses) and byte sizes."""

from __future__ import annotations

import math
import re

FOREVER = math.inf
# Go's largest time.Duration (~292 years), the most Ollama can hold: longer reads as forever.
LONGEST_DURATION_SECONDS = (2**63 - 1) / 1e9

_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_NUMBER = re.compile(r"(\d*)(\.\d*)?")
_GO_UNIT = re.compile(r"[^0-9.]*")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string such as "5m", "1h30m", "-1m" or "300ms".

    Follows Go's time.ParseDuration step by step, errors included, since Ollama clients are used
    to its wording: `time: missing unit in duration "300"`, `time: unknown unit "d" in ...`.
    """
    original = text
    quoted = f'"{original}"'
    sign = 1.0
    if text[:1] in ("+", "-"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":  # Go's special case: a bare zero needs no unit
        return 0.0
    if not text:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    pos = 0
    while pos < len(text):
        number = _GO_NUMBER.match(text, pos)
        assert number is not None  # both groups are optional
        whole, fraction = number.group(1), number.group(2) or ""
        if not whole and len(fraction) < 2:  # no digits at all: "", ".", ".s", "s"
            raise ValueError(f"time: invalid duration {quoted}")
        unit = _GO_UNIT.match(text, number.end())
        assert unit is not None
        if not unit.group():
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit.group() not in _GO_UNITS:
            raise ValueError(f'time: unknown unit "{unit.group()}" in duration {quoted}')
        value = float(whole or 0) + (float(fraction) if len(fraction) > 1 else 0.0)
        total += value * _GO_UNITS[unit.group()]
        if total > LONGEST_DURATION_SECONDS:  # Go's int64 nanoseconds overflow
            raise ValueError(f"time: invalid duration {quoted}")
        pos = unit.end()
    return sign * total


def parse_duration(raw: object, *, bare_number_ok: bool = False) -> float:
    """keep_alive in seconds, as Ollama reads it; negative values mean forever (math.inf).

    Numbers are seconds. Strings are Go durations; a unit-less string is refused unless
    `bare_number_ok` (Ollama's OLLAMA_KEEP_ALIVE environment variable allows it, the API does not).
    """
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise ValueError(f"Unsupported type: '{type(raw).__name__}'")
    if isinstance(raw, str):
        text = raw.strip()
        if bare_number_ok and re.fullmatch(r"[+-]?\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            seconds = parse_go_duration(text)
    else:
        seconds = float(raw)
    if math.isnan(seconds):
        raise ValueError("keep_alive must be a number")
    return FOREVER if seconds < 0 or seconds > LONGEST_DURATION_SECONDS else seconds


_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_bytes(raw: str | int) -> int:
    """Bytes in "6GiB", "512MB", "1.5g" or a plain integer."""
    if isinstance(raw, bool):
        raise ValueError(f"expected a size such as 512MiB or 6GB, got {raw!r}")
    if isinstance(raw, int):
        if raw < 0:
            raise ValueError(f"a size cannot be negative, got {raw}")
        return raw
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", raw)
    if match is None or match.group(2).lower() not in _BYTE_UNITS:
        raise ValueError(f"expected a size such as 512MiB or 6GB, got {raw!r}")
    return int(float(match.group(1)) * _BYTE_UNITS[match.group(2).lower()])
