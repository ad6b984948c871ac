"""Process-wide settings: the `Settings` dataclass, one home for every knob that is not a per-model
fact, with its loading and `--help` description. Each setting is read from its environment
variable and can be overridden by the matching `gateway serve` flag; per-model facts live in
registry.yaml instead. How a field is declared, parsed and shown lives in gateway.setting_fields.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.backends.base import check_precision
from gateway.setting_fields import SettingsError as SettingsError  # re-exported
from gateway.setting_fields import (
    auto_or_int,
    bytes_at_least,
    describe_fields,
    finite_duration,
    int_in,
    load_fields,
    one_of,
    parse_addresses,
    parse_bool,
    parse_budget,
    parse_host,
    parse_hosts_and_networks,
    parse_list,
    parse_ports,
    parse_run_overhead,
    public_view_of,
    setting,
)
from gateway.units import parse_bytes, parse_duration

# GATEWAY_MAX_BATCH_TOKENS=auto, per device. On the CPU a run's working memory grows with its
# padded tokens (a MiniLM server's RSS peaked at 1.6 GiB at 16384, 0.6 GiB at 4096) while its
# speed did not drop (four runs of 16 x 256 took 0.91-1.01x one of 64 x 256): docs/memory.md.
AUTO_BATCH_TOKENS = {"cpu": 4096, "cuda": 16384}


def parse_precision(raw: str) -> str:
    """auto, fp32, bf16 or fp16; int8 is refused with the reason (it used to start the server,
    then fail every model load with a 500)."""
    return check_precision(raw.strip().lower())


@dataclass(frozen=True)
class Settings:
    host: str = setting("GATEWAY_HOST", parse_host, "address to bind", "127.0.0.1")
    port: int = setting(
        "GATEWAY_PORT", int_in(1, 65535), "port to listen on (Ollama's port)", 11434
    )
    registry: Path = setting(
        "GATEWAY_REGISTRY", Path, "path of registry.yaml", Path("registry.yaml")
    )
    models_dir: Path = setting(
        "GATEWAY_MODELS_DIR", Path, "where pulled model files live", Path("models")
    )
    api_keys: tuple[str, ...] = setting(
        "GATEWAY_API_KEYS",
        parse_list,
        "comma-separated API keys; empty disables auth",
        (),
        secret=True,
    )
    api_keys_file: Path | None = setting(
        "GATEWAY_API_KEYS_FILE",
        Path,
        "YAML file of hashed API keys with names, scopes and rate limits (re-read on change)",
        None,
    )
    auth_failures_per_minute: int = setting(
        "GATEWAY_AUTH_FAILURES_PER_MINUTE",
        int_in(1),
        "wrong API keys allowed per client address per minute (then 429)",
        60,
    )
    trusted_proxies: tuple[str, ...] = setting(
        "GATEWAY_TRUSTED_PROXIES",
        parse_addresses,
        "comma-separated addresses or networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto name the client (per-address limits, logs); '*' trusts any, 'none' none",
        ("127.0.0.1", "::1"),
        shown="127.0.0.1,::1",
    )
    cors_origins: tuple[str, ...] = setting(
        "GATEWAY_CORS_ORIGINS",
        parse_list,
        "comma-separated browser origins allowed besides the local ones (localhost, 127.0.0.1, "
        "0.0.0.0 at any port; app://, file://, tauri://, vscode-webview://, vscode-file://), as "
        "OLLAMA_ORIGINS: '*' inside one is a wildcard (chrome-extension://*), '*' alone any",
        (),
    )
    log_level: str = setting(
        "GATEWAY_LOG_LEVEL",
        one_of("critical", "error", "warning", "info", "debug", "trace"),
        "logging level",
        "info",
    )
    log_format: str = setting(
        "GATEWAY_LOG_FORMAT",
        one_of("text", "json"),
        "log line format: text, or json (one object a line, with the request ID)",
        "text",
    )
    access_log: bool = setting(
        "GATEWAY_ACCESS_LOG",
        parse_bool,
        "log one line per request (method, path, status, time, model; never bodies or keys)",
        False,
    )
    metrics_public: bool = setting(
        "GATEWAY_METRICS_PUBLIC",
        parse_bool,
        "serve GET /metrics without an API key (for a scraper on a trusted network)",
        False,
    )
    fast_lane: bool = setting(
        "GATEWAY_FAST_LANE",
        parse_bool,
        "answer plain text-embedding requests of every wire family on a lean path beside the "
        "web framework (same answers, ~0.13 ms less CPU each; see gateway/api/fast_lane.py)",
        True,
    )
    keep_alive: float = setting(
        "GATEWAY_KEEP_ALIVE",
        lambda raw: parse_duration(raw, bare_number_ok=True),
        "default keep_alive of a loaded model (Go duration or seconds; negative keeps forever)",
        300.0,
        shown="5m",
    )
    auto_pull: bool = setting(
        "GATEWAY_AUTO_PULL",
        parse_bool,
        "pull a registry model's files on first use instead of answering 404",
        False,
    )
    threads: int = setting(
        "GATEWAY_THREADS",
        int_in(0, 1024),  # ONNX Runtime fails every load on a count it cannot create
        "ONNX Runtime intra-op threads per session (0: one per physical core)",
        0,
    )
    spin: bool = setting(
        "GATEWAY_SPIN",
        parse_bool,
        "let ONNX Runtime's idle threads spin between operators (lower latency, more CPU)",
        True,
    )
    device: str = setting(
        "GATEWAY_DEVICE",
        one_of("auto", "cuda", "cpu"),
        "execution device: auto (CUDA when available), cuda or cpu",
        "auto",
    )
    backend: str = setting(
        "GATEWAY_BACKEND",
        one_of("auto", "onnxruntime", "openvino"),
        "compute backend: auto (OpenVINO on CPUs when installed, ONNX Runtime on CUDA), "
        "onnxruntime or openvino; a model's registry entry may override it",
        "auto",
    )
    precision: str = setting(
        "GATEWAY_PRECISION",
        parse_precision,
        "compute precision: auto (bf16 on AMX/AVX512-BF16 CPUs, fp16 on CUDA), fp32 (exact), "
        "bf16, fp16 (CUDA); a model's registry entry may override it",
        "auto",
    )
    graph_cache: bool = setting(
        "GATEWAY_GRAPH_CACHE",
        parse_bool,
        "keep optimized ONNX graphs under <models dir>/.cache/optimized for faster loads",
        True,
    )
    max_inputs: int = setting(
        "GATEWAY_MAX_INPUTS", int_in(1), "most inputs accepted in one request", 2048
    )
    max_input_chars: int = setting(
        "GATEWAY_MAX_INPUT_CHARS",
        int_in(1),
        "longest text accepted, in characters (before tokenization)",
        200_000,
    )
    max_body_bytes: int = setting(
        "GATEWAY_MAX_BODY_BYTES",
        bytes_at_least(1),  # Litestar reads 0 as no limit at all
        "largest request body accepted",
        64 * 1024 * 1024,
    )
    max_batch_size: int = setting(
        "GATEWAY_MAX_BATCH_SIZE", int_in(1), "most inputs in one inference run", 64
    )
    max_batch_tokens: int | None = setting(
        "GATEWAY_MAX_BATCH_TOKENS",
        auto_or_int(1),
        "most padded tokens in one inference run; auto: 4096 on the CPU, 16384 on CUDA",
        None,
        shown="auto",
    )
    release_tokens: int = setting(
        "GATEWAY_RELEASE_TOKENS",
        int_in(0),
        "a CPU run of at least this many padded tokens gives its working memory back once "
        "the model's queue has been idle for a second; 0: runs keep it",
        2048,
    )
    run_overhead_tokens: float | None = setting(
        "GATEWAY_RUN_OVERHEAD_TOKENS",
        parse_run_overhead,
        "padding (in tokens) worth one extra inference run when cutting batches; "
        "auto: timed at each model's load (a registry entry's run_overhead_tokens wins)",
        None,
        shown="auto",
    )
    max_queue: int = setting(
        "GATEWAY_MAX_QUEUE",
        int_in(1),
        "most inputs waiting for one model; beyond it requests are refused with 503/429",
        8192,
    )
    max_images: int = setting(
        "GATEWAY_MAX_IMAGES", int_in(1), "most images accepted in one request", 64
    )
    image_max_bytes: int = setting(
        "GATEWAY_IMAGE_MAX_BYTES",
        bytes_at_least(1),
        "largest encoded image accepted, inline or fetched (checked while downloading)",
        20 * 1024 * 1024,
        shown="20MiB",
    )
    image_max_pixels: int = setting(
        "GATEWAY_IMAGE_MAX_PIXELS",
        int_in(1),
        "largest decoded image, width x height (decompression bombs are refused)",
        50_000_000,
    )
    image_fetch: bool = setting(
        "GATEWAY_IMAGE_FETCH", parse_bool, "fetch images given as http(s) URLs", True
    )
    image_allow_hosts: tuple[str, ...] = setting(
        "GATEWAY_IMAGE_ALLOW_HOSTS",
        parse_hosts_and_networks,
        "hosts or CIDR networks image URLs may reach even if private (default: public only)",
        (),
    )
    image_allow_ports: tuple[int, ...] | None = setting(
        "GATEWAY_IMAGE_ALLOW_PORTS",
        parse_ports,
        "ports an image URL may use when GATEWAY_IMAGE_ALLOW_HOSTS does not open its host "
        "(allow-listed hosts and networks may use any port); * for any port",
        (80, 443, 8080, 8443),
        shown="80,443,8080,8443",
    )
    image_ca_file: str | None = setting(
        "GATEWAY_IMAGE_CA_FILE",
        str,
        "extra CA bundle (PEM) trusted when fetching https image URLs, e.g. an internal CA",
        None,
    )
    image_connect_timeout: float = setting(
        "GATEWAY_IMAGE_CONNECT_TIMEOUT",
        finite_duration(zero_ok=False),
        "time to connect to an image URL's host",
        5.0,
        shown="5s",
    )
    image_fetch_timeout: float = setting(
        "GATEWAY_IMAGE_FETCH_TIMEOUT",
        finite_duration(zero_ok=False),
        "time for a whole image fetch, redirects included",
        20.0,
        shown="20s",
    )
    image_max_redirects: int = setting(
        "GATEWAY_IMAGE_MAX_REDIRECTS", int_in(0, 10), "redirects followed per image URL", 3
    )
    cache_bytes: int = setting(
        "GATEWAY_CACHE_BYTES",
        parse_bytes,
        "memory for cached embeddings (repeated inputs skip inference); 0 turns the cache off",
        256 * 1024 * 1024,
        shown="256MiB",
    )
    max_ram: str | None = setting(
        "GATEWAY_MAX_RAM",
        parse_budget,
        "host memory models may use: bytes, 6GiB, or a percentage of the machine; 0 = no cap",
        "80%",
    )
    max_vram: str | None = setting(
        "GATEWAY_MAX_VRAM",
        parse_budget,
        "GPU memory models may use: bytes, 6GiB, or a percentage of the device; 0 = no cap",
        "90%",
    )
    max_loaded_models: int = setting(
        "GATEWAY_MAX_LOADED_MODELS", int_in(0), "most models loaded at once (0: no limit)", 0
    )
    memory_wait: float = setting(
        "GATEWAY_MEMORY_WAIT",
        finite_duration(zero_ok=True),
        "how long a load waits for busy models to free memory before answering 503",
        30.0,
        shown="30s",
    )
    max_connections: int = setting(
        "GATEWAY_MAX_CONNECTIONS",
        int_in(1),
        "most open connections (or running requests); beyond it new requests get 503",
        2048,
    )
    header_timeout: float = setting(
        "GATEWAY_HEADER_TIMEOUT",
        finite_duration(zero_ok=False),
        "time a connection has to send a request's line and headers (then 408 and close)",
        10.0,
        shown="10s",
    )
    read_timeout: float = setting(
        "GATEWAY_READ_TIMEOUT",
        finite_duration(zero_ok=False),
        "longest pause between chunks of a request body before the connection is closed",
        30.0,
        shown="30s",
    )
    write_timeout: float = setting(
        "GATEWAY_WRITE_TIMEOUT",
        finite_duration(zero_ok=False),
        "longest a client may leave a response unread (writing paused) before it is dropped",
        30.0,
        shown="30s",
    )
    idle_timeout: float = setting(
        "GATEWAY_IDLE_TIMEOUT",
        finite_duration(zero_ok=False),
        "how long an idle keep-alive connection stays open between requests",
        15.0,
        shown="15s",
    )
    max_header_bytes: int = setting(
        "GATEWAY_MAX_HEADER_BYTES",
        bytes_at_least(1024),  # below that no ordinary request fits: every one would get 431
        "largest request line plus headers (then 431; at least 1KiB)",
        64 * 1024,
        shown="64KiB",
    )
    shutdown_grace: float = setting(
        "GATEWAY_SHUTDOWN_GRACE",
        finite_duration(zero_ok=False),
        "on SIGTERM, the most time until exit; requests still running near its end get 503",
        25.0,
        shown="25s",
    )
    drain_delay: float = setting(
        "GATEWAY_DRAIN_DELAY",
        finite_duration(zero_ok=True),
        "on SIGTERM, time readiness answers 503 before the listener closes",
        3.0,
        shown="3s",
    )

    def batch_tokens(self, device: str) -> int:
        """GATEWAY_MAX_BATCH_TOKENS on `device` (cpu or cuda)."""
        return self.max_batch_tokens or AUTO_BATCH_TOKENS[device]

    def public_view(self) -> dict[str, Any]:
        """Settings as shown by /info: secrets reduced to a count."""
        return public_view_of(self)

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from the environment, then from flag overrides (both as text)."""
        environ = os.environ if environ is None else environ
        return cls(**load_fields(cls, environ, overrides or {}))


def describe_settings() -> list[tuple[str, str, str, str]]:
    """(flag, env var, default, help) for every setting, for `gateway serve --help`."""
    return describe_fields(Settings)


def settings_field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings)]
