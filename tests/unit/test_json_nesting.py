"""How deep a JSON body nests, counted without decoding it (gateway.api.json_errors)."""

from __future__ import annotations

import random
import time

import pytest

from gateway.api.json_errors import MAX_DEPTH, nests_deeper_than


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


@pytest.mark.parametrize(
    ("body", "depth", "deeper"),
    [
        # A string that never closes is not JSON: brackets before it count outside strings
        # only, those after it all count (the decoder refuses such a body anyway).
        (b'[[["a[[[", "' + b"[[[", 3, True),
        (b'[[["a[[[", "' + b"[[[", 5, True),
        (b'[[["a[[[", "' + b"[[[", 6, False),
        (b'[[["\\"' + b"[[[", 5, True),  # escaped quotes do not close it
        (b'[[["\\\\"' + b"[[[", 5, True),  # an escaped backslash does: 6 levels
        (b'[[["\\\\"' + b"[[[]]]", 5, True),
        (b'[[["a\\', 2, True),  # a lone backslash at the very end
        (b'[[["a\\', 3, False),
        (b'[[[\\"]]]', 2, True),  # a backslash outside strings (not JSON) escapes the quote
        (b'[[[\\"]]]', 3, False),
        (b'[[[["\\u005b[["]]]]', 4, False),
    ],
)
def test_unterminated_and_escaped_strings(body: bytes, depth: int, deeper: bool) -> None:
    assert nests_deeper_than(body, depth) is deeper


def reference_depth_exceeded(body: bytes, depth: int) -> bool:
    """Byte by byte, the rule the check implements: a backslash escapes a quote or a backslash
    after it (wherever it is: outside strings it is not JSON anyway), closed strings are
    skipped, and from the first string that never closes on, every bracket counts."""

    def escape_at(k: int) -> bool:
        return body[k : k + 1] == b"\\" and body[k + 1 : k + 2] in (b"\\", b'"')

    level, i = 0, 0
    while i < len(body):
        char = body[i : i + 1]
        if escape_at(i):
            i += 2
            continue
        if char == b'"':
            j = i + 1
            while j < len(body) and body[j : j + 1] != b'"':
                j += 2 if escape_at(j) else 1
            if j < len(body):
                i = j + 1
                continue
        elif char in (b"[", b"{"):
            level += 1
            if level > depth:
                return True
        elif char in (b"]", b"}"):
            level -= 1
        i += 1
    return False


def test_agrees_with_a_byte_by_byte_reading() -> None:
    rng = random.Random(20261206)
    for _ in range(20000):
        body = bytes(rng.choice(b'[[[{]]}"\\\\a') for _ in range(rng.randrange(1, 24)))
        depth = rng.randrange(0, 5)
        assert nests_deeper_than(body, depth) is reference_depth_exceeded(body, depth), body


@pytest.mark.parametrize(
    "body",
    [
        # An unterminated string full of escaped quotes: the old pattern retried from every
        # quote to the end (~4 s at this size, growing with its square).
        b"[" * 65 + b'"' + b'\\"' * 16000,
        b"[" * 65 + b'"' + b'\\"' * 1_000_000,
        b"[" * 65 + b'"' + b"\\\\" * 1_000_000,
        b"[" * 65 + b'"' + b'a\\"' * 1_000_000,
        b"[" * 65 + b'"",' * 1_000_000,
        b"[" + b'"x\\"",' * 1_000_000 + b"]",
        b'{"input": [' + b'"[a] {b} \\"q\\" \\u00e9", ' * 500_000 + b'""]}',  # 11 MiB
        b"[]" * 8_000_000,  # 16 MiB of brackets: ~1 s before, summed in Python, 50 ms now
    ],
)
def test_linear_time_on_adversarial_bodies(body: bytes) -> None:
    started = time.perf_counter()
    nests_deeper_than(body, MAX_DEPTH)
    assert time.perf_counter() - started < 1.0  # ~0.1 s here; 1 s for a slow, busy CI


def test_a_body_the_fast_lane_counted_is_not_counted_again() -> None:
    """The lane counts a body's depth before it decodes it; one it hands on to Litestar (a
    shape it does not take) is not read and counted a second time. (An unmarked deep body is
    refused on the real server: tests/api/test_error_messages.py.)"""
    import asyncio

    from litestar import Request

    from gateway.api.bodies import mark_shallow, refuse_bad_bodies

    deep = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)

    def request(marked: bool) -> Request[object, object, object]:
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": deep, "more_body": False}

        scope: dict[str, object] = {"type": "http", "method": "POST", "path": "/", "headers": []}
        if marked:
            mark_shallow(scope)
        return Request(scope, receive)  # type: ignore[arg-type]

    asyncio.run(refuse_bad_bodies(request(marked=True)))  # taken as counted: no second pass
    with pytest.raises(KeyError):  # unmarked, it reads the body (here: no route to read it for)
        asyncio.run(refuse_bad_bodies(request(marked=False)))
