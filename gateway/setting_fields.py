"""How a process setting is declared, parsed from text and presented, for any settings dataclass.

This module owns the text-to-value parsers that settings use (booleans, comma lists, bounded
integers, durations, memory budgets, choices), the `setting()` field helper that records each
field's environment variable, parser, help text and display default in its metadata, and the
generic walks over those fields: reading them from the environment and flag overrides (raising
`SettingsError`), the /info view with secrets reduced to a count, and the rows of
`gateway serve --help`. Which settings exist, and their defaults, live in
gateway.server_settings and gateway.model_settings (assembled in gateway.settings).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

import idna

from gateway.units import parse_bytes, parse_duration


class SettingsError(ValueError):
    """A setting could not be parsed; the message names the variable or flag."""


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (true/false), got {raw!r}")


def parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def parse_addresses(raw: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or networks (10.0.0.0/8), '*' for any, or 'none'."""
    if raw.strip().lower() == "none":  # empty already means the default
        return ()
    items = parse_list(raw)
    for item in items:
        if item != "*":
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"expected IP addresses or networks, got {item!r}") from None
    return items


# One DNS label: letters, digits, hyphens inside; underscores too, as ascii_host allows them
# (Docker and Compose service names carry them).
_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def is_host_name(name: str) -> bool:
    """A DNS name (IDNA for non-ASCII): no scheme, port, path, space or wildcard."""
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True, transitional=False).decode("ascii")
        except idna.IDNAError:
            return False
    labels = name.lower().removesuffix(".").split(".")
    # An all-digit last label reads as an IPv4 address (10.0.0.256), not a name.
    return (
        len(name) <= 253
        and all(_HOST_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def parse_host(raw: str) -> str:
    """An address to bind: an IP literal or a host name, stripped as every other setting is."""
    value = raw.strip()
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not is_host_name(value):
            raise ValueError(f"expected an IP address or a host name, got {raw!r}") from None
    return value


def parse_hosts_and_networks(raw: str) -> tuple[str, ...]:
    """Comma-separated host names and IP networks; anything else would never match, silently."""
    items = parse_list(raw)
    for item in items:
        try:
            ipaddress.ip_network(item.strip("[]"), strict=False)
        except ValueError:
            if not is_host_name(item):
                raise ValueError(f"{item!r} is neither a network nor a host name") from None
    return items


def parse_ports(raw: str) -> tuple[int, ...] | None:
    """Comma-separated TCP ports (1-65535), or '*' for any port (None)."""
    if raw.strip() == "*":
        return None
    ports: list[int] = []
    for item in parse_list(raw):
        if not item.isdigit() or not 0 < int(item) < 65536:
            raise ValueError(f"expected ports from 1 to 65535 or '*', got {item!r}")
        ports.append(int(item))
    return tuple(sorted(set(ports)))


def bytes_at_least(low: int) -> Callable[[str], int]:
    """A size (6GiB, 1000) of at least `low` bytes: a limit of 0 must not mean "no limit"."""

    def parse(raw: str) -> int:
        size = parse_bytes(raw)
        if size < low:
            raise ValueError(f"must be at least {low} byte{'s' * (low != 1)}, got {raw!r}")
        return size

    return parse


def parse_budget(raw: str) -> str | None:
    # Kept as text: a percentage is resolved against the device's total when it is known.
    raw = raw.strip()
    if raw in {"", "0"}:
        return None
    if raw.endswith("%"):
        percent = float(raw[:-1])
        if not 0 < percent <= 100:
            raise ValueError(f"a percentage must be within (0, 100], got {raw!r}")
    elif parse_bytes(raw) == 0:  # "0B", "0GiB": no cap, as "0" is (not a zero budget)
        return None
    return raw


def finite_duration(*, zero_ok: bool) -> Callable[[str], float]:
    """A finite duration (Go syntax or bare seconds); parse_duration maps negatives to forever."""

    def parse(raw: str) -> float:
        seconds = parse_duration(raw, bare_number_ok=True)
        if raw.strip().startswith("-"):
            raise ValueError(f"must not be negative, got {raw!r}")
        if not math.isfinite(seconds):  # past Go's longest duration (~292 years)
            raise ValueError(f"too long, got {raw!r}")
        if seconds == 0 and not zero_ok:
            raise ValueError(f"must be more than zero, got {raw!r}")
        return seconds

    return parse


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {raw!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"within {low}..{high}"
            raise ValueError(f"must be {bounds}, got {value}")
        return value

    return parse


def auto_or_int(low: int) -> Callable[[str], int | None]:
    """'auto' (None: the code picks) or a whole number of at least `low`."""
    whole = int_in(low)

    def parse(raw: str) -> int | None:
        return None if raw.strip().lower() == "auto" else whole(raw)

    return parse


def parse_run_overhead(raw: str) -> float | None:
    value = raw.strip().lower()
    if value == "auto":
        return None
    try:
        tokens = float(value)
    except ValueError:
        raise ValueError(f"expected 'auto' or a number of tokens, got {raw!r}") from None
    if not 0 <= tokens <= 1e6:
        raise ValueError(f"must be within 0..1000000, got {raw!r}")
    return tokens


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def setting(
    env: str,
    parse: Callable[[str], Any],
    help: str,
    default: Any,
    *,
    secret: bool = False,
    shown: str | None = None,
) -> Any:  # a dataclass field: typed as its default, as dataclasses.field is
    return field(
        default=default,
        metadata={"env": env, "parse": parse, "help": help, "secret": secret, "shown": shown},
    )


def load_fields(
    cls: type[Any], environ: Mapping[str, str], overrides: Mapping[str, str]
) -> dict[str, Any]:
    """Parsed values of `cls`'s setting fields: flag overrides first, then the environment."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        raw = overrides.get(f.name)
        origin = f"--{f.name.replace('_', '-')}"
        if raw is None:
            raw = environ.get(f.metadata["env"])
            origin = f.metadata["env"]
        if raw is None or not raw.strip():  # an empty variable means unset, as in Ollama
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            raise SettingsError(f"{origin}: {exc}") from None
    return values


def public_view_of(settings: Any) -> dict[str, Any]:
    """Setting values as shown by /info: secrets reduced to a count."""
    view: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.metadata["secret"]:
            view[f.name] = f"{len(value)} configured"
        elif isinstance(value, Path):
            view[f.name] = str(value)
        elif isinstance(value, tuple):
            view[f.name] = list(value)
        else:
            view[f.name] = value
    return view


def describe_fields(cls: type[Any]) -> list[tuple[str, str, str, str]]:
    """(flag, env var, default, help) for every setting field of `cls`."""
    rows = []
    for f in dataclasses.fields(cls):
        default = f.metadata["shown"] or f.default
        if isinstance(default, tuple):
            default = ",".join(default) or "(empty)"
        elif default is None:
            default = "(none)"
        rows.append(
            (f"--{f.name.replace('_', '-')}", f.metadata["env"], str(default), f.metadata["help"])
        )
    return rows
