"""Content-Encoding: the server decodes no coding, so any but identity is refused (415)."""

from __future__ import annotations

import pytest

from gateway.api.bodies import unsupported_codings


@pytest.mark.parametrize(
    ("values", "unsupported"),
    [
        ([], []),
        ([""], []),
        (["identity"], []),
        (["Identity, IDENTITY"], []),
        (["gzip"], ["gzip"]),
        (["GZip"], ["gzip"]),
        (["gzip, br"], ["gzip", "br"]),
        (["identity", "deflate"], ["deflate"]),  # repeated headers are one list
        ([" zstd ,, identity"], ["zstd"]),
    ],
)
def test_every_coding_but_identity_is_unsupported(
    values: list[str], unsupported: list[str]
) -> None:
    assert unsupported_codings(values) == unsupported
