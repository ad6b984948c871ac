"""Ollama's `options` on the embedding routes: what applies to an embedding model, what does not.

Ollama takes Modelfile parameters per request. For embeddings only the context length matters:
`num_ctx` caps it (effective context = min(num_ctx, the model's)). Every other option
(temperature, num_thread, mirostat, ...) is ignored as Ollama's embed ignores it, and so are
null values: LangChain's OllamaEmbeddings sends thirteen keys, all null.
"""

from __future__ import annotations

from typing import Any

from gateway.encoders.context import MIN_CONTEXT
from gateway.errors import InvalidRequest


def context_option(options: dict[str, Any] | None) -> int | None:
    """options.num_ctx as a token count, or None when it is absent or null."""
    value = (options or {}).get("num_ctx")
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON numbers from JavaScript clients may arrive as 2048.0
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_CONTEXT:
        raise InvalidRequest(
            f"options.num_ctx must be an integer of at least {MIN_CONTEXT}, not {value!r}",
            param="options",
        )
    return value
