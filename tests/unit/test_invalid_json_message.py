"""What a 400 says about a body that is not valid JSON (gateway.api.json_errors)."""

from __future__ import annotations

import pytest

from gateway.api.json_errors import invalid_json_message

TRUNCATED = "Input data was truncated"
TRAILING_COMMA = "JSON is malformed: trailing comma in object (byte 70)"


@pytest.mark.parametrize(
    ("body", "escape", "at"),
    [
        (b'"\\ud800"', "\\ud800", 1),
        (b'"a\\uDC00b"', "\\uDC00", 2),
        (b'"\\\\\\ud800"', "\\ud800", 3),  # an escaped backslash, then an escape
        (b'"\\\\\\\\\\ud800"', "\\ud800", 5),
        (b'"\\\\ud83d\\udc00"', "\\udc00", 8),  # the "high" before it is plain text
        (b'"\\ud83d\\\\udc00"', "\\ud83d", 1),  # and so is the "low" after it
        (b'"\\ud83d\\udc00 \\ud83d\\ud83d\\udc00"', "\\ud83d", 14),  # pairs are skipped
        (b'"\\udc00\\udc00"', "\\udc00", 1),
    ],
)
def test_an_unpaired_surrogate_escape_is_named(body: bytes, escape: str, at: int) -> None:
    message = invalid_json_message(TRUNCATED, body)
    assert f"{escape} at byte {at} is an unpaired UTF-16 surrogate" in message


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"all-minilm","input":"the escape \\\\ud83d is documented here",}',
        b'{"input": "\\\\\\\\ud800",}',
        b'{"input": "\\\\udc00",}',
        b'{"input": "\\ud83d\\ude00",}',
    ],
)
def test_text_that_only_looks_like_an_escape_is_not_blamed(body: bytes) -> None:
    message = invalid_json_message(TRAILING_COMMA, body)
    assert "surrogate" not in message
    assert message == f"invalid JSON in request body: {TRAILING_COMMA}"


def test_other_faults_keep_their_wording() -> None:
    assert "the body is empty" in invalid_json_message("whatever", b" \n")
    assert "ends before the JSON value is complete" in invalid_json_message(TRUNCATED, b'{"a')
    assert invalid_json_message("bad", None) == "invalid JSON in request body: bad"
