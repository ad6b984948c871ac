"""registry.yaml's hf:// sources are pinned: a commit and a sha256 for every file (the served
cross-encoder's parity is tests/parity/test_registry_pins.py).
"""

from __future__ import annotations

import re

from gateway.registry import Registry
from gateway.sources import HfSource, parse_source
from tools.paths import REPO

COMMIT = re.compile(r"^[0-9a-f]{40}$")


# hf:// sources whose commit or file sha256 no public record found offline (see the report of
# issue 12): they stay as they are until someone with Hub access pins them. Nothing else may
# join this list.
UNVERIFIED = {
    ("nomic-embed-vision", "model"),
    ("nomic-embed-vision", "preprocessor"),
    ("answerai-colbert-small", "model"),
    ("answerai-colbert-small", "tokenizer"),
    ("gte-moderncolbert", "model"),
    ("gte-moderncolbert", "tokenizer"),
    # Commit pinned (the one several projects pin) and tokenizer.json's sha256 found; no public
    # record of the 2.4 GB fp32 graph's or its weights' sha256 was found offline (docs/models.md).
    ("qwen3-embedding", "model"),
    ("qwen3-embedding", "model_data"),
}


def test_every_hf_file_is_pinned_to_a_commit_with_a_sha256() -> None:
    registry = Registry.load(REPO / "registry.yaml")
    unpinned = []
    for spec in registry:
        for role, ref in spec.files.items():
            source = parse_source(ref.source or spec.source or "", REPO)
            if not isinstance(source, HfSource):
                continue
            pinned = bool(COMMIT.match(source.revision or "")) and ref.sha256 is not None
            if not pinned:
                unpinned.append((spec.name, role))
    assert sorted(unpinned) == sorted(UNVERIFIED), "pin new hf:// files (commit + sha256)"
