"""Settings whose values would mean "no limit" or "no service", host names, and the image
allow-list: refused at start-up with one line naming the variable."""

from __future__ import annotations

import pytest

from gateway.memory import resolve_budget
from gateway.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        # Litestar reads a body limit of 0 as none at all; the help says "largest body accepted".
        (
            {"GATEWAY_MAX_BODY_BYTES": "0"},
            "GATEWAY_MAX_BODY_BYTES: must be at least 1 byte, got '0'",
        ),
        # 0 here used to pass Settings and crash start-up in FetchPolicy with a traceback.
        ({"GATEWAY_IMAGE_MAX_BYTES": "0"}, "GATEWAY_IMAGE_MAX_BYTES: must be at least 1 byte"),
        # Every request would get 431.
        (
            {"GATEWAY_MAX_HEADER_BYTES": "0"},
            "GATEWAY_MAX_HEADER_BYTES: must be at least 1024 bytes",
        ),
        ({"GATEWAY_MAX_HEADER_BYTES": "1000"}, "GATEWAY_MAX_HEADER_BYTES: must be at least 1024"),
        (
            {"GATEWAY_IMAGE_CONNECT_TIMEOUT": "0"},
            "GATEWAY_IMAGE_CONNECT_TIMEOUT: must be more than zero, got '0'",
        ),
        (
            {"GATEWAY_IMAGE_FETCH_TIMEOUT": "0s"},
            "GATEWAY_IMAGE_FETCH_TIMEOUT: must be more than zero",
        ),
        # Negative durations used to mean "forever": an image fetch without a deadline.
        (
            {"GATEWAY_IMAGE_CONNECT_TIMEOUT": "-1"},
            "GATEWAY_IMAGE_CONNECT_TIMEOUT: must not be negative",
        ),
        (
            {"GATEWAY_IMAGE_FETCH_TIMEOUT": "-1"},
            "GATEWAY_IMAGE_FETCH_TIMEOUT: must not be negative",
        ),
        ({"GATEWAY_MEMORY_WAIT": "-5m"}, "GATEWAY_MEMORY_WAIT: must not be negative, got '-5m'"),
        (
            {"GATEWAY_MEMORY_WAIT": "99999999999"},
            "GATEWAY_MEMORY_WAIT: too long, got '99999999999'",
        ),
        # ONNX Runtime cannot make that many threads: every model load would fail with a 500.
        (
            {"GATEWAY_THREADS": "99999999999999999999999"},
            "GATEWAY_THREADS: must be within 0..1024, got 99999999999999999999999",
        ),
    ],
)
def test_limits_that_would_mean_no_limit_or_no_service_are_refused(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ)
    assert str(caught.value).startswith(message)


def test_smallest_limits_are_accepted() -> None:
    settings = Settings.load(
        {
            "GATEWAY_MAX_BODY_BYTES": "1",
            "GATEWAY_IMAGE_MAX_BYTES": "1",
            "GATEWAY_MAX_HEADER_BYTES": "1KiB",
            "GATEWAY_IMAGE_CONNECT_TIMEOUT": "1ms",
            "GATEWAY_MEMORY_WAIT": "0",
            "GATEWAY_THREADS": "1024",
        }
    )
    assert (settings.max_body_bytes, settings.image_max_bytes, settings.max_header_bytes) == (
        1,
        1,
        1024,
    )
    assert (settings.image_connect_timeout, settings.memory_wait, settings.threads) == (
        0.001,
        0.0,
        1024,
    )


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("127.0.0.1 ", "127.0.0.1"),
        (" ::", "::"),
        ("localhost", "localhost"),
        ("gw_1.lan", "gw_1.lan"),
    ],
)
def test_host_is_stripped_as_every_setting_is(raw: str, host: str) -> None:
    assert Settings.load({"GATEWAY_HOST": raw}).host == host


@pytest.mark.parametrize("raw", ["bad host", "http://0.0.0.0", "127.0.0.1:8080", "[::1]", "*"])
def test_a_host_that_cannot_be_bound_is_refused_by_name(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load({"GATEWAY_HOST": raw})
    assert str(caught.value) == f"GATEWAY_HOST: expected an IP address or a host name, got {raw!r}"


def test_image_allow_hosts_take_networks_and_host_names() -> None:
    raw = "10.0.0.0/8, images.internal, [fd00::1], fd00::/8, Bilder.Straße.de, store_1"
    assert Settings.load({"GATEWAY_IMAGE_ALLOW_HOSTS": raw}).image_allow_hosts == (
        "10.0.0.0/8",
        "images.internal",
        "[fd00::1]",
        "fd00::/8",
        "Bilder.Straße.de",
        "store_1",
    )


@pytest.mark.parametrize(
    "entry",
    ["10.0.0.0/33", "http://images.local", "images.local:8080", "bad host!", "*.example.com",
     "10.0.0.256", "images.local/path"],
)  # fmt: skip
def test_image_allow_hosts_entries_that_would_never_match_are_refused(entry: str) -> None:
    # These used to become host names no URL can have: the entry was ignored without a word.
    with pytest.raises(SettingsError) as caught:
        Settings.load({"GATEWAY_IMAGE_ALLOW_HOSTS": f"images.internal,{entry}"})
    assert str(caught.value) == (
        f"GATEWAY_IMAGE_ALLOW_HOSTS: {entry!r} is neither a network nor a host name"
    )


@pytest.mark.parametrize("raw", ["0", "65536", "http", "443-8443", "-1"])
def test_image_allow_ports_are_ports_or_a_star(raw: str) -> None:
    with pytest.raises(SettingsError, match="GATEWAY_IMAGE_ALLOW_PORTS: expected ports from 1"):
        Settings.load({"GATEWAY_IMAGE_ALLOW_PORTS": f"443,{raw}"})
    assert Settings.load({}).image_allow_ports == (80, 443, 8080, 8443)


@pytest.mark.parametrize("raw", ["0", "0B", "0GiB", "0MiB", "0.0", " 0 "])
def test_a_zero_memory_budget_means_no_cap(raw: str) -> None:
    """The help says 0 = no cap: any spelling of zero bytes, not just "0", is uncapped (a zero
    budget would refuse every second model and evict all others after each load)."""
    settings = Settings.load({"GATEWAY_MAX_RAM": raw, "GATEWAY_MAX_VRAM": raw})
    assert settings.max_ram is None and settings.max_vram is None
    assert resolve_budget(settings.max_ram, 1 << 34) is None
