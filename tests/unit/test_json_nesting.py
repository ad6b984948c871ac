"""How deep a JSON body nests, counted without decoding it (gateway.api.json_errors)."""

from __future__ import annotations

import pytest

from gateway.api.json_errors import nests_deeper_than


@pytest.mark.parametrize(
    ("body", "depth", "deeper"),
    [
        (b'{"a": [[1]]}', 3, False),
        (b'{"a": [[1]]}', 2, True),
        (b'{"a": "[[[[[[[["}', 1, False),  # brackets in a string do not count
        (b'{"a": "q\\" [[[[", "b": 1}', 1, False),  # nor after an escaped quote
        (b'{"a": "\\\\", "b": [[[1]]]}', 3, True),  # an escaped backslash ends before the quote
        (b"[" * 300 + b"]" * 300, 299, True),
        (b"[" * 300 + b"]" * 300, 300, False),
        (b"[[1]," * 100 + b"[]" + b"]" * 100, 100, True),  # siblings do not add up; nesting does
        (b"[" + b"[1]," * 500 + b"[]]", 2, False),
        (b"{{{", 2, True),  # not JSON: still counted, the decoder refuses it anyway
    ],
)
def test_nesting_depth(body: bytes, depth: int, deeper: bool) -> None:
    assert nests_deeper_than(body, depth) is deeper
