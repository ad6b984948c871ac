"""Logging set-up: text or JSON lines, each with the request ID, never an API key.

Input texts are never logged by the gateway's own code; configured API keys are additionally
masked in every formatted line, whoever wrote it (a library echoing a header, say).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from gateway.request_context import current_request_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
MASK = "[redacted]"
TRACE = 5  # uvicorn's level below DEBUG


def loggable(text: str) -> str:
    """`text` from a request (a path, say) fit for one log line: a newline in it would start a
    forged line in the text format, so control and other unprintable characters become
    backslash escapes, and a backslash is doubled so that an escape cannot be faked either.
    Printable text without a backslash (nearly every request) is returned as it is."""
    if text.isprintable() and "\\" not in text:
        return text
    return text.encode("unicode_escape").decode("ascii")


class RequestIdFilter(logging.Filter):
    """Stamps each record with the ID of the request it was written in ('-' outside one),
    unless the writer named the request itself (`extra={"request_id": ...}`: a batch's failure,
    logged off-request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class RepeatThrottle(logging.Filter):
    """Lets one record with message `message` through per `window` seconds, counting the rest
    into the next one that passes. uvicorn warns once per request refused at the connection cap:
    a flood of refusals would otherwise be a flood of identical lines."""

    def __init__(self, message: str, window: float = 10.0) -> None:
        super().__init__()
        self.message, self.window = message, window
        self.next_at = 0.0
        self.held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != self.message:
            return True
        now = time.monotonic()
        if now < self.next_at:
            self.held += 1
            return False
        if self.held:
            record.msg = f"{self.message} ({self.held} more like it in the last {self.window:g} s)"
        self.next_at, self.held = now + self.window, 0
        return True


# uvicorn's line for each request answered 503 beyond limit_concurrency (GATEWAY_MAX_CONNECTIONS).
OVER_CAPACITY_LINE = "Exceeded concurrency limit."


class _Masking:
    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first: a key that contains another key is masked whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


class TextFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(TEXT_FORMAT)
        self.mask = _Masking(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self.mask(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id[, exception]."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.mask = _Masking(secrets)

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.mask(record.getMessage()),
            "request_id": getattr(record, "request_id", current_request_id()),
        }
        if record.exc_info:
            payload["exception"] = self.mask(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text", secrets: Iterable[str] = ()) -> None:
    """Send every logger (uvicorn's too, which propagate here) to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    formatter = JsonFormatter(secrets) if log_format == "json" else TextFormatter(secrets)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(TRACE if level.lower() == "trace" else level.upper())
    uvicorn_error = logging.getLogger("uvicorn.error")
    for old_filter in [f for f in uvicorn_error.filters if isinstance(f, RepeatThrottle)]:
        uvicorn_error.removeFilter(old_filter)
    uvicorn_error.addFilter(RepeatThrottle(OVER_CAPACITY_LINE))
