"""A failed run is logged once per batch, and the line names the requests it failed: a batch
mixes clients, and the line is written on the event loop outside all of them. Each request of a
shared batch also gets a line of its own, stamped with its request ID."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from gateway import batching
from gateway.batching import Batcher, InferenceError
from gateway.logs import RequestIdFilter, TextFormatter
from gateway.request_context import begin, end


@dataclass(frozen=True)
class Text:
    length: int


class FailingEncoder:
    """Every run fails; the first waits until the test lets it, so that later requests queue
    up behind it and run together."""

    spec: Any = SimpleNamespace(name="failing")
    batch_invariant = True

    def __init__(self) -> None:
        self.release = threading.Event()

    def run(self, items: list[Text]) -> list[np.ndarray]:
        assert self.release.wait(30), "the test never let the run finish"
        raise RuntimeError("device lost")


def failure_lines(requests: int) -> list[str]:
    """The batch lines of the failed runs: one request alone, then `requests` in one batch."""
    return [line for line in failure_log(requests) if "; requests: " in line]


def failure_log(requests: int) -> list[str]:
    """Log lines of the failed runs: one request alone, then `requests` in one batch."""
    encoder = FailingEncoder()
    executor = ThreadPoolExecutor(1)
    subject = Batcher(
        encoder,  # type: ignore[arg-type]
        executor,
        max_batch_size=64,
        max_batch_tokens=100_000,
        max_queue=1000,
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger(batching.__name__)
    logger.addHandler(handler)

    async def request(request_id: str) -> None:
        _, token = begin(request_id)  # as the ASGI middleware does, per request (task)
        try:
            with pytest.raises(InferenceError):
                await subject.submit([Text(4), Text(5)])
        finally:
            end(token)

    async def run() -> None:
        alone = asyncio.create_task(request("req-alone"))
        await asyncio.sleep(0)  # its run is on the device; the rest queue behind it
        together = [asyncio.create_task(request(f"req-{i}")) for i in range(requests)]
        await asyncio.sleep(0)
        encoder.release.set()
        await asyncio.wait_for(asyncio.gather(alone, *together), 30)

    try:
        asyncio.run(run())
    finally:
        encoder.release.set()
        executor.shutdown()
        logger.removeHandler(handler)
    return [line for line in stream.getvalue().splitlines() if "inference failed" in line]


def own_lines(lines: list[str], request_id: str) -> list[str]:
    """The lines stamped with `request_id` (the text formatter writes it in brackets)."""
    return [line for line in lines if f" [{request_id}] " in line]


def test_a_failed_batch_names_every_request_in_it() -> None:
    alone, together = failure_lines(3)
    # One request: the line is that request's own (its request_id field), and names it.
    assert " [req-alone] " in alone and "(2 inputs; requests: req-alone)" in alone
    assert " [-] " in together  # several: no one request's line
    assert "(6 inputs; requests: req-0, req-1, req-2)" in together


def test_the_named_requests_are_bounded() -> None:
    many = batching.NAMED_REQUESTS + 3
    _, together = failure_lines(many)
    shown = ", ".join(f"req-{i}" for i in range(batching.NAMED_REQUESTS))
    assert f"requests: {shown} and 3 more)" in together
    assert f"req-{batching.NAMED_REQUESTS}," not in together


def test_each_request_of_a_failed_batch_has_a_line_with_its_own_id() -> None:
    """Past the ten the batch line names, and in JSON logs (which filter by the request_id
    field), a request's failure must still be found by its ID."""
    many = batching.NAMED_REQUESTS + 3
    lines = failure_log(many)
    for i in range(many):
        (own,) = own_lines(lines, f"req-{i}")
        assert " WARNING " in own
        said = f"inference failed for failing: device lost (a batch of {2 * many} inputs"
        assert f"{said} from {many} requests" in own
    # The request alone has its batch line, which is its own; no second line.
    (alone,) = own_lines(lines, "req-alone")
    assert " ERROR " in alone and "requests: req-alone)" in alone
    assert len(lines) == 2 + many
