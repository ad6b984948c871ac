"""Source strings in registry.yaml: which kind of source each names, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.sources import HfSource, LocalSource, PypiSource, SourceError, parse_source


def test_parse_source() -> None:
    base = Path("/srv/registry")
    assert parse_source("hf://org/repo@abc123", base) == HfSource("org/repo", "abc123")
    assert parse_source("hf://org/repo", base) == HfSource("org/repo", "main")
    assert parse_source("pypi://pkg-name==1.2.3", base) == PypiSource("pkg-name", "1.2.3")
    assert parse_source("weights", base) == LocalSource(base / "weights")
    assert parse_source("file:///opt/w", base) == LocalSource(Path("/opt/w"))
    with pytest.raises(SourceError, match="must pin a version"):
        parse_source("pypi://pkg-name", base)
    with pytest.raises(SourceError, match="expected hf://org/repo@revision"):
        parse_source("hf://repo-without-org", base)
