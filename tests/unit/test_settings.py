"""Settings from environment variables and flags, and the units they are written in."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from gateway.settings import Settings, SettingsError
from gateway.units import parse_bytes, parse_duration, parse_go_duration

# -- durations: Go's time.ParseDuration, as Ollama reads keep_alive -----------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("300ms", 0.3),
        ("1.5h", 5400.0),
        ("2h45m30.5s", 9930.5),
        (".5s", 0.5),
        ("5.s", 5.0),
        ("+10s", 10.0),
        ("-1m", -60.0),
        ("0", 0.0),
        ("-0", 0.0),
        ("0s", 0.0),
        ("1500us", 0.0015),
        ("1500\u00b5s", 0.0015),  # MICRO SIGN
        ("1500\u03bcs", 0.0015),  # GREEK SMALL LETTER MU
        ("250ns", 250e-9),
        ("1h1m1s1ms", 3661.001),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds, abs=1e-12)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("300", 'time: missing unit in duration "300"'),
        ("5m10", 'time: missing unit in duration "5m10"'),
        ("1.2.3s", 'time: missing unit in duration "1.2.3s"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("5mm", 'time: unknown unit "mm" in duration "5mm"'),
        ("5 m", 'time: unknown unit " m" in duration "5 m"'),
        ("5M", 'time: unknown unit "M" in duration "5M"'),
        ("", 'time: invalid duration ""'),
        ("-", 'time: invalid duration "-"'),
        (".", 'time: invalid duration "."'),
        ("s", 'time: invalid duration "s"'),
        ("forever", 'time: invalid duration "forever"'),
    ],
)
def test_go_duration_errors_use_go_wording(text: str, error: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_go_duration(text)
    assert str(caught.value) == error


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("5m", 300.0),
        ("0", 0.0),
        (0, 0.0),
        (30, 30.0),
        (2.5, 2.5),
        ("-1m", math.inf),
        ("-1s", math.inf),
        (-1, math.inf),
        (-0.5, math.inf),
        # Past Go's largest Duration (~292 years): forever, not a date no clock can hold.
        (1e12, math.inf),
        (2**63, math.inf),
        (1e308, math.inf),
        (9e9, 9e9),
    ],
)
def test_keep_alive_values(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == seconds


def test_keep_alive_refusals() -> None:
    # The API takes a unit-less number only as a JSON number; a string needs a unit.
    with pytest.raises(ValueError, match=r'^time: missing unit in duration "300"$'):
        parse_duration("300")
    # OLLAMA_KEEP_ALIVE-style variables take bare seconds too.
    assert parse_duration("300", bare_number_ok=True) == 300.0
    assert parse_duration("-1", bare_number_ok=True) == math.inf
    for value, type_name in ((True, "bool"), (False, "bool"), (None, "NoneType"), ([5], "list")):
        with pytest.raises(ValueError) as caught:
            parse_duration(value)
        assert str(caught.value) == f"Unsupported type: '{type_name}'"
    with pytest.raises(ValueError):
        parse_duration(float("nan"))
    # A string past Go's int64 nanoseconds is refused as ParseDuration refuses it.
    with pytest.raises(ValueError, match=r'^time: invalid duration "99999999999999h"$'):
        parse_duration("99999999999999h")
    assert parse_duration("2562047h") == 2562047 * 3600.0  # just under the limit


# -- byte sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("6GiB", 6 * 1024**3),
        ("512MB", 512_000_000),
        ("512mb", 512_000_000),
        ("150MiB", 150 * 1024**2),
        ("1.5g", 1_500_000_000),
        ("2 KiB", 2048),
        ("1TB", 10**12),
        ("100", 100),
        ("100b", 100),
        (4096, 4096),
        (0, 0),
    ],
)
def test_byte_sizes(raw: str | int, size: int) -> None:
    assert parse_bytes(raw) == size


@pytest.mark.parametrize("raw", ["lots", "-1GB", "5XB", "GiB", "", "1e9", True, -1])
def test_bad_byte_sizes(raw: str | int) -> None:
    with pytest.raises(ValueError):
        parse_bytes(raw)


# -- Settings.load ------------------------------------------------------------------------------


def test_defaults_without_environment() -> None:
    assert Settings.load({}) == Settings()
    assert Settings().port == 11434
    assert Settings().keep_alive == 300.0


def test_environment_is_read() -> None:
    settings = Settings.load(
        {
            "GATEWAY_HOST": "0.0.0.0",
            "GATEWAY_PORT": "8080",
            "GATEWAY_REGISTRY": "/etc/gateway/registry.yaml",
            "GATEWAY_API_KEYS": "sk-one, sk-two,,",
            "GATEWAY_KEEP_ALIVE": "10m",
            "GATEWAY_AUTO_PULL": "true",
            "GATEWAY_MAX_BODY_BYTES": "1MiB",
            "UNRELATED": "x",
        }
    )
    assert settings.host == "0.0.0.0"
    assert settings.port == 8080
    assert settings.registry == Path("/etc/gateway/registry.yaml")
    assert settings.api_keys == ("sk-one", "sk-two")
    assert settings.keep_alive == 600.0
    assert settings.auto_pull is True
    assert settings.max_body_bytes == 1024**2
    assert settings.max_batch_size == Settings().max_batch_size  # unset: the default


@pytest.mark.parametrize(
    ("raw", "cpu", "cuda"), [(None, 4096, 16384), ("auto", 4096, 16384), ("8192", 8192, 8192)]
)
def test_batch_tokens_auto_is_smaller_on_the_cpu(raw: str | None, cpu: int, cuda: int) -> None:
    """A CPU run's working memory grows with its tokens and its speed does not (the default
    was 16384 everywhere: 1.6 GiB of working memory for one MiniLM run)."""
    settings = Settings.load({} if raw is None else {"GATEWAY_MAX_BATCH_TOKENS": raw})
    assert (settings.batch_tokens("cpu"), settings.batch_tokens("cuda")) == (cpu, cuda)


@pytest.mark.parametrize(
    ("raw", "seconds"), [("300", 300.0), ("-1", math.inf), ("-1m", math.inf), ("0", 0.0)]
)
def test_keep_alive_variable_takes_bare_seconds(raw: str, seconds: float) -> None:
    assert Settings.load({"GATEWAY_KEEP_ALIVE": raw}).keep_alive == seconds


def test_flags_override_the_environment() -> None:
    settings = Settings.load(
        {"GATEWAY_PORT": "8080", "GATEWAY_AUTO_PULL": "1"}, overrides={"port": "9090"}
    )
    assert settings.port == 9090
    assert settings.auto_pull is True


@pytest.mark.parametrize(
    ("environ", "overrides", "message"),
    [
        ({"GATEWAY_PORT": "eighty"}, {}, "GATEWAY_PORT: expected a whole number"),
        ({"GATEWAY_AUTO_PULL": "maybe"}, {}, "GATEWAY_AUTO_PULL: expected a boolean"),
        (
            {"GATEWAY_KEEP_ALIVE": "5 minutes"},
            {},
            'GATEWAY_KEEP_ALIVE: time: unknown unit " minutes" in duration "5 minutes"',
        ),
        ({"GATEWAY_MAX_BODY_BYTES": "big"}, {}, "GATEWAY_MAX_BODY_BYTES: expected a size"),
        # The flag's value is the one used, so the flag is the one named.
        ({"GATEWAY_PORT": "8080"}, {"port": "x"}, "--port: expected a whole number"),
        ({}, {"keep_alive": "1d"}, '--keep-alive: time: unknown unit "d" in duration "1d"'),
    ],
)
def test_errors_name_the_variable_or_flag(
    environ: dict[str, str], overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ, overrides=overrides)
    assert str(caught.value).startswith(message)


def test_secrets_never_appear_in_the_public_view() -> None:
    settings = Settings.load({"GATEWAY_API_KEYS": "sk-live-123456,sk-live-abcdef"})
    view = settings.public_view()
    assert view["api_keys"] == "2 configured"
    text = json.dumps(view, default=str)
    assert "sk-live" not in text
    secrets = [f.name for f in dataclasses.fields(Settings) if f.metadata["secret"]]
    assert secrets == ["api_keys"]
    # Everything else is shown, as JSON-friendly values.
    assert set(view) == {f.name for f in dataclasses.fields(Settings)}
    assert view["registry"] == "registry.yaml"
    assert view["cors_origins"] == []


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"GATEWAY_PORT": "99999"}, "GATEWAY_PORT: must be within 1..65535, got 99999"),
        ({"GATEWAY_MAX_BATCH_SIZE": "0"}, "GATEWAY_MAX_BATCH_SIZE: must be at least 1, got 0"),
        ({"GATEWAY_DEVICE": "tpu"}, "GATEWAY_DEVICE: expected one of auto, cuda, cpu"),
        (
            {"GATEWAY_RUN_OVERHEAD_TOKENS": "lots"},
            "GATEWAY_RUN_OVERHEAD_TOKENS: expected 'auto' or a number of tokens, got 'lots'",
        ),
        (
            {"GATEWAY_RUN_OVERHEAD_TOKENS": "-3"},
            "GATEWAY_RUN_OVERHEAD_TOKENS: must be within 0..1000000, got '-3'",
        ),
    ],
)
def test_out_of_range_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ=environ)
    assert message in str(caught.value)


@pytest.mark.parametrize(("raw", "tokens"), [("auto", None), (" AUTO ", None), ("12.5", 12.5)])
def test_run_overhead_is_measured_unless_pinned(raw: str, tokens: float | None) -> None:
    assert Settings().run_overhead_tokens is None
    assert Settings.load({"GATEWAY_RUN_OVERHEAD_TOKENS": raw}).run_overhead_tokens == tokens


def test_an_empty_variable_means_unset() -> None:
    settings = Settings.load(environ={"GATEWAY_PORT": "", "GATEWAY_MAX_RAM": " "})
    assert settings.port == 11434
    assert settings.max_ram == "80%"
