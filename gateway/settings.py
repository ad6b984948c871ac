"""Process-wide settings: one home for every knob that is not a per-model fact.

Each setting is read from its environment variable and can be overridden by the matching
`gateway serve` flag. Per-model facts live in registry.yaml instead.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.units import parse_bytes, parse_duration

_LOCALHOST_ORIGINS = r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$"


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (true/false), got {raw!r}")


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_budget(raw: str) -> str | None:
    # Kept as text: a percentage is resolved against the device's total when it is known.
    raw = raw.strip()
    if raw in {"", "0"}:
        return None
    if raw.endswith("%"):
        percent = float(raw[:-1])
        if not 0 < percent <= 100:
            raise ValueError(f"a percentage must be within (0, 100], got {raw!r}")
    else:
        parse_bytes(raw)
    return raw


def _timeout(*, zero_ok: bool) -> Callable[[str], float]:
    """A finite duration (Go syntax or bare seconds); parse_duration maps negatives to forever."""

    def parse(raw: str) -> float:
        seconds = parse_duration(raw, bare_number_ok=True)
        if raw.strip().startswith("-") or not math.isfinite(seconds):
            raise ValueError(f"must not be negative, got {raw!r}")
        if seconds == 0 and not zero_ok:
            raise ValueError(f"must be more than zero, got {raw!r}")
        return seconds

    return parse


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
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


def _parse_run_overhead(raw: str) -> float | None:
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


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _setting(
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


@dataclass(frozen=True)
class Settings:
    host: str = _setting("GATEWAY_HOST", str, "address to bind", "127.0.0.1")
    port: int = _setting(
        "GATEWAY_PORT", _int_in(1, 65535), "port to listen on (Ollama's port)", 11434
    )
    registry: Path = _setting(
        "GATEWAY_REGISTRY", Path, "path of registry.yaml", Path("registry.yaml")
    )
    models_dir: Path = _setting(
        "GATEWAY_MODELS_DIR", Path, "where pulled model files live", Path("models")
    )
    api_keys: tuple[str, ...] = _setting(
        "GATEWAY_API_KEYS",
        _parse_list,
        "comma-separated API keys; empty disables auth",
        (),
        secret=True,
    )
    api_keys_file: Path | None = _setting(
        "GATEWAY_API_KEYS_FILE",
        Path,
        "YAML file of hashed API keys with names, scopes and rate limits (re-read on change)",
        None,
    )
    auth_failures_per_minute: int = _setting(
        "GATEWAY_AUTH_FAILURES_PER_MINUTE",
        _int_in(1),
        "failed authentications allowed per client address per minute (then 429)",
        60,
    )
    cors_origins: tuple[str, ...] = _setting(
        "GATEWAY_CORS_ORIGINS",
        _parse_list,
        "comma-separated allowed browser origins ('*' for any); empty allows localhost only",
        (),
    )
    log_level: str = _setting(
        "GATEWAY_LOG_LEVEL",
        _one_of("critical", "error", "warning", "info", "debug", "trace"),
        "logging level",
        "info",
    )
    log_format: str = _setting(
        "GATEWAY_LOG_FORMAT",
        _one_of("text", "json"),
        "log line format: text, or json (one object a line, with the request ID)",
        "text",
    )
    access_log: bool = _setting(
        "GATEWAY_ACCESS_LOG",
        _parse_bool,
        "log one line per request (method, path, status, time, model; never bodies or keys)",
        False,
    )
    metrics_public: bool = _setting(
        "GATEWAY_METRICS_PUBLIC",
        _parse_bool,
        "serve GET /metrics without an API key (for a scraper on a trusted network)",
        False,
    )
    keep_alive: float = _setting(
        "GATEWAY_KEEP_ALIVE",
        lambda raw: parse_duration(raw, bare_number_ok=True),
        "default keep_alive of a loaded model (Go duration or seconds; negative keeps forever)",
        300.0,
        shown="5m",
    )
    auto_pull: bool = _setting(
        "GATEWAY_AUTO_PULL",
        _parse_bool,
        "pull a registry model's files on first use instead of answering 404",
        False,
    )
    threads: int = _setting(
        "GATEWAY_THREADS",
        _int_in(0),
        "ONNX Runtime intra-op threads per session (0: one per physical core)",
        0,
    )
    spin: bool = _setting(
        "GATEWAY_SPIN",
        _parse_bool,
        "let ONNX Runtime's idle threads spin between operators (lower latency, more CPU)",
        True,
    )
    device: str = _setting(
        "GATEWAY_DEVICE",
        _one_of("auto", "cuda", "cpu"),
        "execution device: auto (CUDA when available), cuda or cpu",
        "auto",
    )
    backend: str = _setting(
        "GATEWAY_BACKEND",
        _one_of("auto", "onnxruntime", "openvino"),
        "compute backend: auto (OpenVINO on CPUs when installed, ONNX Runtime on CUDA), "
        "onnxruntime or openvino; a model's registry entry may override it",
        "auto",
    )
    precision: str = _setting(
        "GATEWAY_PRECISION",
        _one_of("auto", "fp32", "bf16", "int8", "fp16"),
        "compute precision: auto (bf16 on AMX/AVX512-BF16 CPUs, fp16 on CUDA), fp32 (exact), "
        "bf16, fp16 (CUDA); a model's registry entry may override it",
        "auto",
    )
    graph_cache: bool = _setting(
        "GATEWAY_GRAPH_CACHE",
        _parse_bool,
        "keep optimized ONNX graphs under <models dir>/.cache/optimized for faster loads",
        True,
    )
    max_inputs: int = _setting(
        "GATEWAY_MAX_INPUTS", _int_in(1), "most inputs accepted in one request", 2048
    )
    max_input_chars: int = _setting(
        "GATEWAY_MAX_INPUT_CHARS",
        _int_in(1),
        "longest text accepted, in characters (before tokenization)",
        200_000,
    )
    max_body_bytes: int = _setting(
        "GATEWAY_MAX_BODY_BYTES",
        parse_bytes,
        "largest request body accepted",
        64 * 1024 * 1024,
    )
    max_batch_size: int = _setting(
        "GATEWAY_MAX_BATCH_SIZE", _int_in(1), "most inputs in one inference run", 64
    )
    max_batch_tokens: int = _setting(
        "GATEWAY_MAX_BATCH_TOKENS",
        _int_in(1),
        "most padded tokens in one inference run",
        16384,
    )
    run_overhead_tokens: float | None = _setting(
        "GATEWAY_RUN_OVERHEAD_TOKENS",
        _parse_run_overhead,
        "padding (in tokens) worth one extra inference run when cutting batches; "
        "auto: timed at each model's load (a registry entry's run_overhead_tokens wins)",
        None,
        shown="auto",
    )

    max_queue: int = _setting(
        "GATEWAY_MAX_QUEUE",
        _int_in(1),
        "most inputs waiting for one model; beyond it requests are refused with 503/429",
        8192,
    )

    max_images: int = _setting(
        "GATEWAY_MAX_IMAGES", _int_in(1), "most images accepted in one request", 64
    )
    image_max_bytes: int = _setting(
        "GATEWAY_IMAGE_MAX_BYTES",
        parse_bytes,
        "largest encoded image accepted, inline or fetched (checked while downloading)",
        20 * 1024 * 1024,
        shown="20MiB",
    )
    image_max_pixels: int = _setting(
        "GATEWAY_IMAGE_MAX_PIXELS",
        _int_in(1),
        "largest decoded image, width x height (decompression bombs are refused)",
        50_000_000,
    )
    image_fetch: bool = _setting(
        "GATEWAY_IMAGE_FETCH", _parse_bool, "fetch images given as http(s) URLs", True
    )
    image_allow_hosts: tuple[str, ...] = _setting(
        "GATEWAY_IMAGE_ALLOW_HOSTS",
        _parse_list,
        "hosts or CIDR networks image URLs may reach even if private (default: public only)",
        (),
    )
    image_ca_file: str | None = _setting(
        "GATEWAY_IMAGE_CA_FILE",
        str,
        "extra CA bundle (PEM) trusted when fetching https image URLs, e.g. an internal CA",
        None,
    )
    image_connect_timeout: float = _setting(
        "GATEWAY_IMAGE_CONNECT_TIMEOUT",
        lambda raw: parse_duration(raw, bare_number_ok=True),
        "time to connect to an image URL's host",
        5.0,
        shown="5s",
    )
    image_fetch_timeout: float = _setting(
        "GATEWAY_IMAGE_FETCH_TIMEOUT",
        lambda raw: parse_duration(raw, bare_number_ok=True),
        "time for a whole image fetch, redirects included",
        20.0,
        shown="20s",
    )
    image_max_redirects: int = _setting(
        "GATEWAY_IMAGE_MAX_REDIRECTS", _int_in(0, 10), "redirects followed per image URL", 3
    )
    cache_bytes: int = _setting(
        "GATEWAY_CACHE_BYTES",
        parse_bytes,
        "memory for cached embeddings (repeated inputs skip inference); 0 turns the cache off",
        256 * 1024 * 1024,
        shown="256MiB",
    )
    max_ram: str | None = _setting(
        "GATEWAY_MAX_RAM",
        _parse_budget,
        "host memory models may use: bytes, 6GiB, or a percentage of the machine; 0 = no cap",
        "80%",
    )
    max_vram: str | None = _setting(
        "GATEWAY_MAX_VRAM",
        _parse_budget,
        "GPU memory models may use: bytes, 6GiB, or a percentage of the device; 0 = no cap",
        "90%",
    )
    max_loaded_models: int = _setting(
        "GATEWAY_MAX_LOADED_MODELS", _int_in(0), "most models loaded at once (0: no limit)", 0
    )
    memory_wait: float = _setting(
        "GATEWAY_MEMORY_WAIT",
        lambda raw: parse_duration(raw, bare_number_ok=True),
        "how long a load waits for busy models to free memory before answering 503",
        30.0,
        shown="30s",
    )

    max_connections: int = _setting(
        "GATEWAY_MAX_CONNECTIONS",
        _int_in(1),
        "most open connections (or running requests); beyond it new requests get 503",
        2048,
    )
    header_timeout: float = _setting(
        "GATEWAY_HEADER_TIMEOUT",
        _timeout(zero_ok=False),
        "time a connection has to send a request's line and headers (then 408 and close)",
        10.0,
        shown="10s",
    )
    read_timeout: float = _setting(
        "GATEWAY_READ_TIMEOUT",
        _timeout(zero_ok=False),
        "longest pause between chunks of a request body before the connection is closed",
        30.0,
        shown="30s",
    )
    idle_timeout: float = _setting(
        "GATEWAY_IDLE_TIMEOUT",
        _timeout(zero_ok=False),
        "how long an idle keep-alive connection stays open between requests",
        15.0,
        shown="15s",
    )
    max_header_bytes: int = _setting(
        "GATEWAY_MAX_HEADER_BYTES",
        parse_bytes,
        "largest request line plus headers (then 431)",
        64 * 1024,
        shown="64KiB",
    )
    shutdown_grace: float = _setting(
        "GATEWAY_SHUTDOWN_GRACE",
        _timeout(zero_ok=False),
        "on SIGTERM, the most time until exit; requests still running near its end get 503",
        25.0,
        shown="25s",
    )
    drain_delay: float = _setting(
        "GATEWAY_DRAIN_DELAY",
        _timeout(zero_ok=True),
        "on SIGTERM, time readiness answers 503 before the listener closes",
        3.0,
        shown="3s",
    )

    @property
    def cors_origin_regex(self) -> str | None:
        return None if self.cors_origins else _LOCALHOST_ORIGINS

    def public_view(self) -> dict[str, Any]:
        """Settings as shown by /info: secrets reduced to a count."""
        view: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"]:
                view[f.name] = f"{len(value)} configured"
            elif isinstance(value, Path):
                view[f.name] = str(value)
            elif isinstance(value, tuple):
                view[f.name] = list(value)
            else:
                view[f.name] = value
        return view

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from the environment, then from flag overrides (both as text)."""
        environ = os.environ if environ is None else environ
        overrides = overrides or {}
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
        return cls(**values)


class SettingsError(ValueError):
    """A setting could not be parsed; the message names the variable or flag."""


def describe_settings() -> list[tuple[str, str, str, str]]:
    """(flag, env var, default, help) for every setting, for `gateway serve --help`."""
    rows = []
    for f in dataclasses.fields(Settings):
        default = f.metadata["shown"] or f.default
        if isinstance(default, tuple):
            default = ",".join(default) or "(empty)"
        elif default is None:
            default = "(none)"
        rows.append(
            (f"--{f.name.replace('_', '-')}", f.metadata["env"], str(default), f.metadata["help"])
        )
    return rows


def settings_field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings)]
