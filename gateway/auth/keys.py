"""API keys: plain ones from GATEWAY_API_KEYS, hashed ones with names, scopes and limits from
GATEWAY_API_KEYS_FILE (reloaded when the file changes, or on SIGHUP).

Keys file (YAML):

    keys:
      - name: indexer                 # shown in logs instead of the key
        sha256: 9f86d081884c7d65...   # hex SHA-256 of the key: `printf %s KEY | sha256sum`
        scope: embed                  # embed (default), metrics (GET /metrics only) or admin
        requests_per_minute: 600      # optional
        inputs_per_minute: 100000     # optional: texts, images or documents

GATEWAY_API_KEYS entries are `KEY` (printable ASCII) or `sha256:HEX`; they have admin scope and
no limits, as keys had before scopes existed. Keys are compared by SHA-256 digest, each in
constant time. The keys file and GATEWAY_API_KEYS are read as UTF-8.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.auth.limits import TokenBucket
from gateway.settings import SettingsError

log = logging.getLogger(__name__)

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
# How often the file's size and mtime are checked for a change, at most.
STAT_INTERVAL_SECONDS = 1.0


class Scope(enum.Enum):
    """What a key may call: `embed` the API routes, `metrics` GET /metrics alone (a scraper's
    key, which cannot embed), `admin` every route (also pull, delete, /admin/*, /metrics).
    `metrics` and `admin` also see /health's detail (guard.HEALTH_DETAIL_SCOPES).
    Not ordered: an embed key reads no metrics, a metrics key embeds nothing."""

    EMBED = "embed"
    METRICS = "metrics"
    ADMIN = "admin"

    def grants(self, needed: Scope) -> bool:
        return self is Scope.ADMIN or self is needed

    @classmethod
    def parse(cls, raw: object, where: str) -> Scope:
        if not isinstance(raw, str) or raw.upper() not in cls.__members__:
            raise KeysFileError(
                f"{where}: scope must be 'embed', 'metrics' or 'admin', got {raw!r}"
            )
        return cls[raw.upper()]


class KeysFileError(SettingsError):
    """The keys file or an entry of GATEWAY_API_KEYS is malformed; the message says where."""


def digest_of(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def fingerprint(digest: bytes) -> str:
    """What logs may show of a key: the first 8 hex digits of its SHA-256."""
    return f"sha256:{digest.hex()[:8]}"


@dataclass
class ApiKey:
    name: str
    digest: bytes = field(repr=False)
    scope: Scope
    requests_per_minute: int | None = None
    inputs_per_minute: int | None = None
    requests: TokenBucket | None = field(default=None, repr=False)
    inputs: TokenBucket | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.requests_per_minute is not None:
            self.requests = TokenBucket(self.requests_per_minute)
        if self.inputs_per_minute is not None:
            self.inputs = TokenBucket(self.inputs_per_minute)

    @property
    def limited(self) -> bool:
        return self.requests is not None or self.inputs is not None


def keys_from_setting(entries: Iterable[str]) -> list[ApiKey]:
    keys = []
    for index, entry in enumerate(entries, start=1):
        if entry.startswith("sha256:"):
            digest = _parse_hex(entry[len("sha256:") :], f"GATEWAY_API_KEYS entry {index}")
        elif not all(" " <= char <= "~" for char in entry):
            # Headers arrive as latin-1 and most clients send UTF-8 or refuse non-ASCII: such
            # a key could never match.
            raise KeysFileError(f"GATEWAY_API_KEYS entry {index}: keys must be printable ASCII")
        else:
            digest = digest_of(entry)
        keys.append(ApiKey(name=f"key-{index}", digest=digest, scope=Scope.ADMIN))
    return keys


def _parse_hex(raw: object, where: str) -> bytes:
    text = raw.strip().lower() if isinstance(raw, str) else ""
    if not _HEX_DIGEST.fullmatch(text):
        raise KeysFileError(f"{where}: sha256 must be 64 hex digits")
    return bytes.fromhex(text)


def _parse_limit(entry: dict[str, Any], name: str, where: str) -> int | None:
    raw = entry.get(name)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise KeysFileError(f"{where}: {name} must be a whole number of at least 1, got {raw!r}")
    return raw


_FIELDS = {"name", "sha256", "scope", "requests_per_minute", "inputs_per_minute"}


def parse_keys_file(text: str, source: str) -> list[ApiKey]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KeysFileError(f"{source}: not valid YAML ({exc.__class__.__name__})") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeysFileError(f"{source}: expected a top-level 'keys:' list")
    keys: list[ApiKey] = []
    names: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        where = f"{source}: key {position}"
        if not isinstance(entry, dict):
            raise KeysFileError(f"{where}: expected a mapping with name, sha256, scope")
        unknown = set(entry) - _FIELDS
        if unknown:
            raise KeysFileError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise KeysFileError(f"{where}: name is required")
        if name in names:
            raise KeysFileError(f"{where}: name '{name}' is used twice")
        names.add(name)
        where = f"{source}: key '{name}'"
        keys.append(
            ApiKey(
                name=name,
                digest=_parse_hex(entry.get("sha256"), where),
                scope=Scope.parse(entry.get("scope", "embed"), where),
                requests_per_minute=_parse_limit(entry, "requests_per_minute", where),
                inputs_per_minute=_parse_limit(entry, "inputs_per_minute", where),
            )
        )
    return keys


class KeyRing:
    """The keys in force; the file's keys are re-read when it changes."""

    def __init__(self, static_keys: list[ApiKey], path: Path | None) -> None:
        self._static = static_keys
        self._path = path
        self._file_keys: list[ApiKey] = []
        self._signature: tuple[int, int] | None = None
        self._checked_at = 0.0
        self._reload_requested = False
        if path is not None:
            self._load()  # a bad file at start-up is fatal, raised here

    @classmethod
    def from_settings(cls, api_keys: Iterable[str], keys_file: Path | None) -> KeyRing:
        try:
            return cls(keys_from_setting(api_keys), keys_file)
        except OSError as exc:
            raise KeysFileError(f"{keys_file}: cannot read ({exc.strerror})") from None

    @property
    def enabled(self) -> bool:
        return bool(self._static) or self._path is not None

    def keys(self) -> list[ApiKey]:
        self._reload_if_changed()
        return self._static + self._file_keys

    def find(self, presented: str) -> ApiKey | None:
        """The key whose digest matches; every digest is compared, each in constant time."""
        digest = digest_of(presented)
        found = None
        for key in self.keys():
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found

    def request_reload(self) -> None:
        """Safe from a signal handler: the next request re-reads the file."""
        self._reload_requested = True

    def reload(self) -> bool:
        """Re-read the keys file now (SIGHUP); on a bad file the old keys stay in force."""
        if self._path is None:
            return False
        try:
            self._load()
        except (KeysFileError, OSError) as exc:
            log.error("keys file not reloaded, previous keys stay in force: %s", exc)
            return False
        return True

    def _stat(self) -> tuple[int, int]:
        assert self._path is not None
        stat = os.stat(self._path)
        return stat.st_mtime_ns, stat.st_size

    def _load(self) -> None:
        assert self._path is not None
        signature = self._stat()
        try:  # UTF-16 (PowerShell 5's `>`) must be a KeysFileError: at reload a 500 otherwise
            text = self._path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise KeysFileError(f"{self._path}: not UTF-8 text (byte {exc.start})") from None
        keys = parse_keys_file(text, str(self._path))
        previous = {key.name: key for key in self._file_keys}
        for key in keys:  # a key whose limits did not change keeps its buckets' state
            old = previous.get(key.name)
            if old is not None and (old.requests_per_minute, old.inputs_per_minute) == (
                key.requests_per_minute,
                key.inputs_per_minute,
            ):
                key.requests, key.inputs = old.requests, old.inputs
        self._file_keys, self._signature = keys, signature
        log.info("keys file %s: %d keys loaded", self._path, len(keys))

    def _reload_if_changed(self) -> None:
        if self._path is None:
            return
        if self._reload_requested:
            self._reload_requested = False
            self.reload()
            return
        now = time.monotonic()
        if now - self._checked_at < STAT_INTERVAL_SECONDS:
            return
        self._checked_at = now
        try:
            signature = self._stat()
        except OSError as exc:
            log.error("keys file %s unreadable, previous keys stay in force: %s", self._path, exc)
            return
        if signature != self._signature:
            self._signature = signature  # a bad version is reported once, not every second
            self.reload()
