"""Which Transfer-Encoding headers the connection refuses with 501 (gateway/connections.py)."""

from __future__ import annotations

import pytest

from gateway.connection_answers import transfer_codings, unsupported_transfer_coding


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ([], False),
        ([(b"transfer-encoding", b"chunked")], False),
        ([(b"transfer-encoding", b" Chunked ,")], False),  # empty list elements are allowed
        ([(b"transfer-encoding", b"gzip, chunked")], True),
        ([(b"transfer-encoding", b"identity,chunked")], True),  # no longer a transfer coding
        ([(b"transfer-encoding", b"x-custom;level=1, CHUNKED")], True),
        ([(b"transfer-encoding", b"gzip"), (b"transfer-encoding", b"chunked")], True),
        # chunked not last: the parser's 400 (the body's length is unknown, RFC 9112 6.3)
        ([(b"transfer-encoding", b"gzip")], False),
        ([(b"transfer-encoding", b"chunked, gzip")], False),
        ([(b"content-encoding", b"gzip"), (b"transfer-encoding", b"chunked")], False),
    ],
)
def test_codings_besides_a_final_chunked_are_refused(
    headers: list[tuple[bytes, bytes]], refused: bool
) -> None:
    answer = unsupported_transfer_coding(transfer_codings(headers))
    assert (answer is not None) == refused
    if answer is not None:
        assert answer.status == 501 and answer.reason == b"Not Implemented"
        assert answer.code == "unsupported_transfer_encoding"


def test_the_message_names_the_coding_and_stays_short() -> None:
    answer = unsupported_transfer_coding(["x" * 5000, "chunked"])
    assert answer is not None and f"'{'x' * 40}'" in answer.message
    assert len(answer.message) < 200
