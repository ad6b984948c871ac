"""The server's own settings, two groups of `Settings` (gateway.settings): where it listens
and finds its registry and models, who may call it and what it logs (`ServerSettings`);
how long a connection may take and how the server shuts down (`ConnectionSettings`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.setting_fields import (
    bytes_at_least,
    finite_duration,
    int_in,
    one_of,
    parse_addresses,
    parse_bool,
    parse_host,
    parse_list,
    setting,
)


@dataclass(frozen=True)
class ServerSettings:
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


@dataclass(frozen=True)
class ConnectionSettings:
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
