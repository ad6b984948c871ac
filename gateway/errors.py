"""Errors raised below the API layer; each API family renders them in its own shape."""

from __future__ import annotations


class GatewayError(Exception):
    """An error a client should see: a status, a message, and the request field at fault."""

    status_code = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(GatewayError):
    status_code = 400
    code = "invalid_request"


class EmptyInput(InvalidRequest):
    """An empty input, or no inputs where some are needed (TEI answers these 400, not 422)."""


class InputTooLong(InvalidRequest):
    code = "context_length_exceeded"


class UnsupportedInput(InvalidRequest):
    """The model cannot take this kind of input (an image for a text model, say)."""

    code = "unsupported_input"


class Unauthorized(GatewayError):
    status_code = 401
    code = "invalid_api_key"


class UnsupportedEncoding(GatewayError):
    """A request body in a content coding the server does not decode (RFC 9110 8.4: 415)."""

    status_code = 415
    code = "unsupported_content_encoding"


class ModelNotFound(GatewayError):
    status_code = 404
    code = "model_not_found"

    def __init__(self, message: str, *, param: str | None = "model") -> None:
        super().__init__(message, param=param)


class ModelLoadError(GatewayError):
    """The model's files are present but could not be loaded (corrupt, wrong format)."""

    status_code = 500
    code = "model_load_failed"


class PullFailed(GatewayError):
    """Fetching a model's files from its source failed (network, missing file, checksum)."""

    status_code = 502
    code = "pull_failed"


class InsufficientStorage(GatewayError):
    """The models directory has no room for a pull (HTTP 507)."""

    status_code = 507
    code = "insufficient_storage"


class StartupFailed(GatewayError):
    """A model named in `preload:` could not be loaded: the server does not start, and
    `gateway serve` says why in one line."""


class Busy(GatewayError):
    """The gateway cannot take more work right now; the client should retry."""

    status_code = 503
    code = "server_busy"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after
