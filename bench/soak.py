"""Soak: many clients, more models than the budget holds, mixed sizes, some requests abandoned.

    python -m bench.soak --duration 600          # the full run (10 minutes)
    python -m bench.soak --duration 180 --clients 64

Three models (int8 all-MiniLM-L6-v2, its fp32 export, the tiny NomicBert) are served under
GATEWAY_MAX_LOADED_MODELS=2, so every minute brings evictions and reloads. Each client picks a
model, an API (Ollama /api/embed or OpenAI /v1/embeddings), a number of texts (1..64) and their
lengths (a few words to ~250 tokens) at random; a share of requests is abandoned by the client
after 5-300 ms (the connection closes mid-request).

Pass criteria (exit 1 otherwise): no failed request other than the documented 503 (Ollama) and
429 (OpenAI) refusals; the server's RSS in the same state (every model unloaded, then the same two
loaded and run once at the largest request shape, then idle) grows by < 5% from after the
warm-up to after the run; file descriptors and threads of the idle server after the run are no
more than after the warm-up (plus a small slack for ONNX Runtime's lazily started pools).

RSS while under load is sampled too (medians of the first and last fifths are reported), but it
does not decide: it swings by +-50% with which two of the three models happen to be loaded and
how far their arenas have grown, so it says more about the schedule than about leaks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import msgspec

from bench.models import REPO
from tools.exports import export_minilm_fp32, export_tiny_nomic
from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, nomic_entry, pull_default_model, write_registry

MODELS = ("soak-minilm-int8", "soak-minilm-fp32", "soak-nomic")
_SENTENCE = (
    "the quick brown fox jumps over a lazy dog while embeddings of short and long texts are "
    "computed in batches by a gateway that serves several models under one memory budget"
)
WORDS = _SENTENCE.split(" ")
TEXT_COUNTS = (1, 1, 1, 2, 4, 8, 16, 32, 64)
# Extra idle threads/fds tolerated after the run (ONNX Runtime and the executor start lazily).
THREAD_SLACK = 4
FD_SLACK = 8
DOCUMENTED_REFUSALS = {503, 429}
# A request without an answer by then counts as failed.
CLIENT_TIMEOUT_S = 300


@dataclass
class Sample:
    at: float
    rss: int
    threads: int
    fds: int


@dataclass
class Tally:
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    cancelled: int = 0
    texts: int = 0

    def record(self, status: int, body: bytes) -> None:
        self.statuses[str(status)] += 1
        if status != 200 and status not in DOCUMENTED_REFUSALS and len(self.failures) < 20:
            self.failures.append(f"{status}: {body[:200]!r}")


def proc_sample(pid: int) -> Sample:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return Sample(
        at=time.monotonic(),
        rss=int(fields["VmRSS"].split()[0]) * 1024,
        threads=int(fields["Threads"]),
        fds=len(list(Path(f"/proc/{pid}/fd").iterdir())),
    )


def build_registry(workdir: Path) -> Path:
    int8 = pull_default_model()
    return write_registry(
        workdir / "registry.yaml",
        {
            MODELS[0]: minilm_entry(int8, quantization="Q8_0"),
            MODELS[1]: minilm_entry(export_minilm_fp32(), quantization="F32"),
            MODELS[2]: nomic_entry(export_tiny_nomic(), aliases=[]),
        },
        default_model=MODELS[0],
    )


def random_texts(rng: random.Random) -> list[str]:
    count = rng.choice(TEXT_COUNTS)
    return [" ".join(rng.choices(WORDS, k=rng.choice((3, 12, 40, 180)))) for _ in range(count)]


async def client_loop(
    session: aiohttp.ClientSession,
    url: str,
    stop_at: float,
    rng: random.Random,
    cancel_rate: float,
    tally: Tally,
) -> None:
    while time.monotonic() < stop_at:
        model = rng.choice(MODELS)
        texts = random_texts(rng)
        openai = rng.random() < 0.5
        path = "/v1/embeddings" if openai else "/api/embed"
        body = msgspec.json.encode({"model": model, "input": texts})
        abandon_after = rng.uniform(0.005, 0.3) if rng.random() < cancel_rate else None
        try:
            async with asyncio.timeout(abandon_after):
                async with session.post(url + path, data=body) as response:
                    raw = await response.read()
                    tally.record(response.status, raw)
                    if response.status == 200:
                        tally.texts += len(texts)
        except TimeoutError:
            if abandon_after is None:  # the session's own limit: the server never answered
                tally.statuses["client timeout"] += 1
                tally.failures.append(f"{path} {model}: no answer in {CLIENT_TIMEOUT_S} s")
            else:
                tally.cancelled += 1
        except aiohttp.ClientError as exc:
            tally.statuses["connection error"] += 1
            tally.failures.append(f"{path} {model}: {exc!r}")


async def run_load(
    url: str, clients: int, seconds: float, seed: int, cancel_rate: float, tally: Tally
) -> None:
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(
            *(
                client_loop(session, url, stop_at, random.Random(seed + i), cancel_rate, tally)
                for i in range(clients)
            )
        )


async def sample_while(pid: int, done: asyncio.Event, samples: list[Sample]) -> None:
    while not done.is_set():
        samples.append(proc_sample(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=2.0)


async def prime(url: str, models: Sequence[str] = MODELS) -> None:
    """Each model once with the largest request shape, so that its ONNX Runtime arena has grown
    to its high-water mark before anything is measured (loads after evictions start afresh)."""
    largest = [" ".join(WORDS[i % len(WORDS) :] + WORDS) * 6 for i in range(max(TEXT_COUNTS))]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        for model in models:
            body = msgspec.json.encode({"model": model, "input": largest})
            async with session.post(url + "/api/embed", data=body) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"priming {model}: {response.status}")


async def post_json(url: str, body: dict[str, object]) -> None:
    timeout = aiohttp.ClientTimeout(total=300)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, data=msgspec.json.encode(body)) as response,
    ):
        answer = await response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {url} {body}: {response.status} {answer[:200]!r}")


async def same_state_sample(pid: int, url: str) -> tuple[Sample, Sample]:
    """RSS with no model loaded, then with the same two models loaded and run once at the
    largest shape (their arenas at the high-water mark), each after the server went idle."""
    for name in ps_names(url):  # Ollama's unload: no input, keep_alive 0
        await post_json(url + "/api/embed", {"model": name.split(":")[0], "keep_alive": 0})
    if ps_names(url):
        raise RuntimeError(f"models still loaded after unloading: {ps_names(url)}")
    empty = await idle_sample(pid)
    await prime(url, MODELS[:2])
    return empty, await idle_sample(pid)


async def measured_phase(
    pid: int, url: str, args: argparse.Namespace, seconds: float, tally: Tally
) -> list[Sample]:
    samples: list[Sample] = []
    done = asyncio.Event()
    sampler = asyncio.create_task(sample_while(pid, done, samples))
    await run_load(url, args.clients, seconds, args.seed, args.cancel_rate, tally)
    done.set()
    await sampler
    return samples


def fifth_median(samples: Sequence[Sample], last: bool) -> float:
    size = max(1, len(samples) // 5)
    window = samples[-size:] if last else samples[:size]
    return statistics.median(s.rss for s in window)


async def idle_sample(pid: int, settle: float = 5.0) -> Sample:
    await asyncio.sleep(settle)
    return proc_sample(pid)


def ps_names(url: str) -> list[str]:
    import httpx

    return sorted(m["name"] for m in httpx.get(url + "/api/ps", timeout=10).json()["models"])


def mib_pair(before: Sample, after: Sample) -> str:
    return f"{before.rss / 2**20:.1f} -> {after.rss / 2**20:.1f}"


def report(result: dict[str, object]) -> str:
    rows = [
        "| measure | value |",
        "|---|---|",
    ]
    for name, value in result.items():
        if name in {"samples", "failures"}:
            continue
        rows.append(f"| {name} | {value} |")
    return "\n".join(rows)


async def soak(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    registry = build_registry(workdir)
    env = {
        "GATEWAY_MAX_LOADED_MODELS": "2",
        "GATEWAY_CACHE_BYTES": "0",  # every request runs inference
        "GATEWAY_LOG_LEVEL": "warning",
        **dict(item.split("=", 1) for item in args.server_env),
    }
    with GatewayServer(registry=registry, env=env, startup_timeout=120) as server:
        assert server.process is not None
        pid = server.process.pid
        await prime(server.url)
        warm = Tally()
        await run_load(server.url, args.clients, args.warmup, args.seed + 1000, 0.1, warm)
        baseline = await idle_sample(pid)
        empty_before, same_before = await same_state_sample(pid, server.url)
        tally = Tally()
        started = time.monotonic()
        samples = await measured_phase(pid, server.url, args, args.duration, tally)
        elapsed = time.monotonic() - started
        after = await idle_sample(pid)
        loaded = ps_names(server.url)
        empty_after, same_after = await same_state_sample(pid, server.url)
        exit_ok = server.process.poll() is None
    first, last = fifth_median(samples, last=False), fifth_median(samples, last=True)
    requests = sum(count for status, count in tally.statuses.items())
    failed = sum(
        count
        for status, count in tally.statuses.items()
        if status != "200" and not (status.isdigit() and int(status) in DOCUMENTED_REFUSALS)
    )
    growth = (same_after.rss - same_before.rss) / same_before.rss
    result: dict[str, object] = {
        "duration_s": round(elapsed, 1),
        "clients": args.clients,
        "requests answered": requests,
        "requests abandoned by the client": tally.cancelled,
        "texts embedded": tally.texts,
        "statuses": dict(sorted(tally.statuses.items())),
        "failed (not 200/503/429)": failed,
        "RSS, no model loaded, before -> after (MiB)": mib_pair(empty_before, empty_after),
        "RSS, same two models loaded, before -> after (MiB)": mib_pair(same_before, same_after),
        "RSS growth (same state)": f"{growth:+.2%}",
        "RSS under load, first -> last fifth (MiB, medians)": (
            f"{first / 2**20:.1f} -> {last / 2**20:.1f} ({(last - first) / first:+.2%})"
        ),
        "RSS under load, min / max (MiB)": (
            f"{min(s.rss for s in samples) / 2**20:.1f} / {max(s.rss for s in samples) / 2**20:.1f}"
        ),
        "idle threads after warm-up / after run": f"{baseline.threads} / {after.threads}",
        "idle fds after warm-up / after run": f"{baseline.fds} / {after.fds}",
        "models loaded at the end (/api/ps)": loaded,
        "server still running": exit_ok,
        "failures": tally.failures,
        "samples": [asdict(s) for s in samples],
    }
    result["pass"] = (
        failed == 0
        and growth < 0.05
        and after.threads <= baseline.threads + THREAD_SLACK
        and after.fds <= baseline.fds + FD_SLACK
        and len(loaded) <= 2
        and exit_ok
    )
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=600.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before measuring")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--cancel-rate", type=float, default=0.1, help="share abandoned")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE", help="server env"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import tempfile

    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        result = asyncio.run(soak(args, Path(tmp)))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(report(result))
    for failure in result["failures"]:  # type: ignore[attr-defined]
        print("  failure:", failure)
    print(f"details: {path}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
