"""API keys: who may call (keys and their scopes), how often (rate limits), and the guard."""

from gateway.auth.keys import ApiKey, KeyRing, KeysFileError, Scope
from gateway.auth.limits import TokenBucket

__all__ = ["ApiKey", "KeyRing", "KeysFileError", "Scope", "TokenBucket"]
