"""Every documented value of every setting parses and takes effect where that is checkable
without a server (`gateway serve --help` is the documentation: its defaults and its help text)."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from gateway.logs import TRACE, configure_logging
from gateway.runtime import Runtime
from gateway.server import uvicorn_config
from gateway.settings import Settings, SettingsError, describe_settings

# setting -> documented forms and what each must become. Adding a setting without rows here
# fails test_every_setting_has_documented_values.
DOCUMENTED: dict[str, list[tuple[str, Any]]] = {
    "host": [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "0.0.0.0"), ("::1", "::1")],
    "port": [("11434", 11434), ("1", 1), ("65535", 65535)],
    "registry": [("registry.yaml", Path("registry.yaml"))],
    "models_dir": [("models", Path("models"))],
    "api_keys": [("key1,key2", ("key1", "key2")), (f"sha256:{'a' * 64}", (f"sha256:{'a' * 64}",))],
    "api_keys_file": [("keys.yaml", Path("keys.yaml"))],
    "auth_failures_per_minute": [("60", 60), ("1", 1)],
    "cors_origins": [("*", ("*",)), ("https://app.example.com", ("https://app.example.com",))],
    "trusted_proxies": [
        ("127.0.0.1,::1", ("127.0.0.1", "::1")),
        ("10.0.0.0/8,192.168.1.7", ("10.0.0.0/8", "192.168.1.7")),
        ("*", ("*",)),
        ("none", ()),
    ],
    "log_level": [
        (level, level) for level in ("critical", "error", "warning", "info", "debug", "trace")
    ]
    + [("TRACE", "trace")],
    "log_format": [("text", "text"), ("json", "json")],
    "access_log": [("true", True), ("false", False)],
    "fast_lane": [("true", True), ("0", False)],
    "metrics_public": [("true", True), ("false", False)],
    "keep_alive": [("5m", 300.0), ("300", 300.0), ("1h30m", 5400.0), ("-1", math.inf), ("0", 0.0)],
    "auto_pull": [("true", True), ("false", False), ("1", True), ("off", False)],
    "threads": [("0", 0), ("4", 4)],
    "spin": [("True", True), ("false", False)],
    "device": [("auto", "auto"), ("cuda", "cuda"), ("cpu", "cpu")],
    "backend": [(value, value) for value in ("auto", "onnxruntime", "openvino")],
    "precision": [(value, value) for value in ("auto", "fp32", "bf16", "fp16")],
    "graph_cache": [("True", True), ("no", False)],
    "max_inputs": [("2048", 2048)],
    "max_input_chars": [("200000", 200_000)],
    "max_body_bytes": [("67108864", 64 << 20), ("64MiB", 64 << 20), ("1MB", 1_000_000)],
    "max_batch_size": [("64", 64)],
    "max_batch_tokens": [("auto", None), ("16384", 16384), ("4096", 4096)],
    "release_tokens": [("2048", 2048), ("4096", 4096), ("0", 0)],
    "run_overhead_tokens": [("auto", None), ("16", 16.0), ("0", 0.0)],
    "max_queue": [("8192", 8192)],
    "max_images": [("64", 64)],
    "image_max_bytes": [("20MiB", 20 << 20), ("1000", 1000)],
    "image_max_pixels": [("50000000", 50_000_000)],
    "image_fetch": [("True", True), ("false", False)],
    "image_allow_hosts": [("10.0.0.0/8,images.internal", ("10.0.0.0/8", "images.internal"))],
    "image_allow_ports": [
        ("80,443,8080,8443", (80, 443, 8080, 8443)),
        ("443, 8443", (443, 8443)),
        ("*", None),
    ],
    "image_ca_file": [("/etc/ssl/internal.pem", "/etc/ssl/internal.pem")],
    "image_connect_timeout": [("5s", 5.0), ("2.5", 2.5)],
    "image_fetch_timeout": [("20s", 20.0), ("1m", 60.0)],
    "image_max_redirects": [("3", 3), ("0", 0), ("10", 10)],
    "cache_bytes": [("256MiB", 256 << 20), ("0", 0)],
    "max_ram": [("80%", "80%"), ("6GiB", "6GiB"), ("1000000", "1000000"), ("0", None)],
    "max_vram": [("90%", "90%"), ("6GiB", "6GiB"), ("0", None)],
    "max_loaded_models": [("0", 0), ("2", 2)],
    "memory_wait": [("30s", 30.0), ("0", 0.0)],
    "max_connections": [("2048", 2048), ("1", 1)],
    "header_timeout": [("10s", 10.0), ("0.5", 0.5)],
    "read_timeout": [("30s", 30.0), ("1m", 60.0)],
    "write_timeout": [("30s", 30.0), ("2.5", 2.5)],
    "idle_timeout": [("15s", 15.0), ("5", 5.0)],
    "max_header_bytes": [("64KiB", 64 << 10), ("8192", 8192)],
    "shutdown_grace": [("25s", 25.0), ("1m", 60.0)],
    "drain_delay": [("3s", 3.0), ("0", 0.0)],
}

FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
CASES = [(name, raw, value) for name, rows in DOCUMENTED.items() for raw, value in rows]


def test_every_setting_has_documented_values() -> None:
    assert set(DOCUMENTED) == set(FIELDS)


@pytest.mark.parametrize(("name", "raw", "value"), CASES, ids=[f"{n}={r}" for n, r, _ in CASES])
def test_documented_value_from_environment_and_flag(name: str, raw: str, value: Any) -> None:
    env = FIELDS[name].metadata["env"]
    assert getattr(Settings.load({env: raw}), name) == value
    assert getattr(Settings.load({}, overrides={name: raw}), name) == value


@pytest.mark.parametrize(("flag", "env", "shown", "help_text"), describe_settings())
def test_documented_default_reads_back_as_the_default(
    flag: str, env: str, shown: str, help_text: str
) -> None:
    name = flag[2:].replace("-", "_")
    if shown in {"(empty)", "(none)"}:
        assert getattr(Settings(), name) in {(), None}
        return
    assert getattr(Settings.load({env: shown}), name) == getattr(Settings(), name)


async def _asgi(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("never called")


@pytest.mark.parametrize("level", ["critical", "error", "warning", "info", "debug", "trace"])
def test_every_log_level_configures_logging_and_uvicorn(level: str) -> None:
    settings = Settings.load({"GATEWAY_LOG_LEVEL": level})
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    try:
        configure_logging(settings.log_level, settings.log_format)  # "trace" crashed start-up
        expected = TRACE if level == "trace" else getattr(logging, level.upper())
        assert root.level == expected
        config = uvicorn_config(settings, _asgi)  # uvicorn's own logging, as serve builds it
        assert isinstance(config, uvicorn.Config)
        assert logging.getLogger("uvicorn.error").level == expected
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


@pytest.mark.parametrize(
    ("raw", "proxy_headers", "allowed"),
    [
        ("127.0.0.1,::1", True, ["127.0.0.1", "::1"]),
        ("10.0.0.0/8", True, ["10.0.0.0/8"]),
        ("*", True, "*"),
        ("none", False, []),
    ],
)
def test_trusted_proxies_reach_uvicorn(raw: str, proxy_headers: bool, allowed: object) -> None:
    config = uvicorn_config(Settings.load({"GATEWAY_TRUSTED_PROXIES": raw}), _asgi)
    assert (config.proxy_headers, config.forwarded_allow_ips) == (proxy_headers, allowed)


def test_connection_settings_reach_uvicorn() -> None:
    settings = Settings.load(
        {
            "GATEWAY_MAX_CONNECTIONS": "100",
            "GATEWAY_IDLE_TIMEOUT": "7s",
            "GATEWAY_MAX_HEADER_BYTES": "16KiB",
            "GATEWAY_SHUTDOWN_GRACE": "20s",
            "GATEWAY_DRAIN_DELAY": "5s",
            "GATEWAY_HEADER_TIMEOUT": "4s",
            "GATEWAY_READ_TIMEOUT": "6s",
            "GATEWAY_WRITE_TIMEOUT": "8s",
        }
    )
    config = uvicorn_config(settings, _asgi)
    assert config.limit_concurrency == 100
    assert config.ws == "none"  # no WebSocket routes: an Upgrade is ignored (connections.py)
    assert config.timeout_keep_alive == 7
    assert config.h11_max_incomplete_event_size == 16 << 10
    assert config.timeout_graceful_shutdown == 15  # the grace less the drain delay
    limits = config.http.limits  # type: ignore[union-attr]
    assert (limits.header_timeout, limits.read_timeout, limits.max_header_bytes) == (4, 6, 16384)
    assert limits.write_timeout == 8


@pytest.mark.parametrize("device", ["auto", "cuda", "cpu"])
def test_every_device_value_builds_a_runtime(device: str) -> None:
    runtime = Runtime(device=Settings.load({"GATEWAY_DEVICE": device}).device)
    assert runtime.device == device


@pytest.mark.parametrize(
    ("env", "raw"),
    [
        ("GATEWAY_LOG_LEVEL", "verbose"),
        ("GATEWAY_HEADER_TIMEOUT", "0"),
        ("GATEWAY_HEADER_TIMEOUT", "-1s"),
        ("GATEWAY_SHUTDOWN_GRACE", "soon"),
        ("GATEWAY_DRAIN_DELAY", "-1"),
        ("GATEWAY_MAX_CONNECTIONS", "0"),
        ("GATEWAY_AUTH_FAILURES_PER_MINUTE", "0"),
        ("GATEWAY_MAX_HEADER_BYTES", "lots"),
        ("GATEWAY_TRUSTED_PROXIES", "proxy.internal"),
        ("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/33"),
    ],
)
def test_undocumented_values_are_refused_by_name(env: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=env):
        Settings.load({env: raw})
