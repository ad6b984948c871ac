"""A TIKTOKEN_CACHE_DIR seeded from a package, so client libraries that call tiktoken (LangChain's
OpenAIEmbeddings) never download their vocabularies in tests.

tiktoken looks a file up in its cache under sha1(<the URL it would fetch>) and accepts it when its
sha256 is the one tiktoken expects; bpe-openai ships the same bytes gzipped (the gateway's own
decoder reads them too, gateway/token_ids.py).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

from gateway.token_ids import vocabulary_dir

# tiktoken_ext/openai_public.py: where tiktoken fetches each encoding from (the cache key).
TIKTOKEN_URLS = {
    name: f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    for name in ("cl100k_base", "o200k_base")
}


def seed_tiktoken_cache(cache_dir: Path) -> Path:
    """Write cl100k_base and o200k_base into `cache_dir` and point TIKTOKEN_CACHE_DIR at it."""
    source = vocabulary_dir()
    assert source is not None, "bpe-openai (the test extra) ships the vocabularies"
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, url in TIKTOKEN_URLS.items():
        target = cache_dir / hashlib.sha1(url.encode()).hexdigest()
        if not target.exists():
            target.write_bytes(gzip.decompress((source / f"{name}.tiktoken.gz").read_bytes()))
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    return cache_dir
