"""`gateway embed` end to end: 10,000 lines in a real terminal, vectors equal to /api/embed's,
a run killed mid-way that resumes and embeds only the rest, and a folder of images.

The 10,000-line run happens in a real pseudo-terminal (150x12), so the progress bar is the one
a person sees; pyte, a VT100 emulator, renders what it draws into screen frames. The resume test
runs against a real server with the cache off, so the server's own `gateway_inputs_total`
proves how many inputs the second run sent.
"""

from __future__ import annotations

import fcntl
import os
import pty
import random
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import httpx
import numpy as np
import pyte
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.bulk.job import image_data_url
from gateway.bulk.output import read_output
from tests.support.image_api import efficientnet_entry
from tools.gateway_server import EXACT_MODE, GatewayServer
from tools.models import write_registry
from tools.paths import MODELS_DIR, REPO
from tools.vision import efficientnet_lite0, encode, photo_like

MODEL = "all-minilm"
WORDS = [
    "river",
    "mountain",
    "cloud",
    "server",
    "vector",
    "search",
    "query",
    "document",
    "garden",
    "winter",
    "light",
    "engine",
    "market",
    "signal",
    "forest",
    "harbor",
    "paper",
    "glass",
    "stone",
    "music",
]


def write_lines(path: Path, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = [f"{' '.join(rng.choices(WORDS, k=rng.randint(2, 6)))} {i}" for i in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return lines


def cli_env() -> dict[str, str]:
    """In-process `gateway embed` computes as the test server does (its exact mode)."""
    return {
        **os.environ,
        **EXACT_MODE,
        "GATEWAY_MODELS_DIR": str(MODELS_DIR),
        "GATEWAY_REGISTRY": str(REPO / "registry.yaml"),
    }


def api_vectors(url: str, texts: list[str]) -> np.ndarray:
    response = httpx.post(url + "/api/embed", json={"model": MODEL, "input": texts}, timeout=300)
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["embeddings"], dtype=np.float32)


def assert_same_vectors(output: Path, lines: list[str], url: str, sample: int) -> None:
    ids, vectors = read_output(output)
    assert ids == [str(i) for i in range(1, len(lines) + 1)]  # line numbers, in order
    assert vectors.shape == (len(lines), 384) and vectors.dtype == np.float32
    rows = sorted(random.Random(7).sample(range(len(lines)), sample))
    expected = api_vectors(url, [lines[i] for i in rows])
    cosine = np.sum(vectors[rows] * expected, axis=1) / (
        np.linalg.norm(vectors[rows], axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() >= 0.99999, f"lowest cosine {cosine.min()} at row {rows[cosine.argmin()]}"


class Terminal:
    """`command` in a 150x12 pseudo-terminal; pyte renders what it draws, as a screen would."""

    COLUMNS, ROWS = 150, 12

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.screen = pyte.Screen(self.COLUMNS, self.ROWS)
        self.stream = pyte.ByteStream(self.screen)
        leader, follower = pty.openpty()
        size = struct.pack("HHHH", self.ROWS, self.COLUMNS, 0, 0)
        fcntl.ioctl(follower, termios.TIOCSWINSZ, size)
        self.process = subprocess.Popen(
            command,
            stdin=follower,
            stdout=follower,
            stderr=follower,
            cwd=REPO,
            env={**env, "TERM": "xterm-256color"},
            start_new_session=True,  # the terminal becomes its controlling terminal
        )
        os.close(follower)
        self.leader = leader

    def read(self, seconds: float) -> None:
        """Feed what the program drew within `seconds` to the screen."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.leader], [], [], left)[0]:
                return
            try:
                data = os.read(self.leader, 65536)
            except OSError:  # EIO: the program exited and the terminal closed
                return
            if not data:
                return
            self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        os.close(self.leader)


@pytest.mark.timeout(1500)
def test_10000_lines_in_a_terminal_match_the_api(server: GatewayServer, tmp_path: Path) -> None:
    source, output = tmp_path / "lines.txt", tmp_path / "vectors.parquet"
    lines = write_lines(source, 10_000, seed=1)
    command = [sys.executable, "-m", "gateway", "embed", str(source), "-m", MODEL,
               "-o", str(output)]  # fmt: skip
    terminal = Terminal(command, cli_env())
    frames: list[str] = []
    try:
        deadline = time.monotonic() + 1400
        while terminal.process.poll() is None and time.monotonic() < deadline:
            terminal.read(0.5)
            frames.append(terminal.text())
        terminal.read(2.0)  # what it drew last, before the terminal closed
        final = terminal.text()
        rc = terminal.process.poll()
    finally:
        terminal.stop()
    assert rc is not None, "gateway embed did not finish:\n" + (frames[-1] if frames else "")
    assert rc == 0, final
    # A bar drawn part-way (percent, count of 10000, rate, ETA) and the finished one.
    partial = [f for f in frames if re.search(r"━.* ([1-9]|[1-9]\d)% +\d+/10000 .*inputs/s", f)]
    assert partial, "no frame showed the bar part-way:\n" + "\n---\n".join(frames[-3:])
    assert "eta" in partial[-1]
    assert re.search(r"100% +10000/10000", final), final
    for needle in ("inputs", "10,000", "throughput", "inputs/s", "dimensions", "384"):
        assert needle in final, final
    assert_same_vectors(output, lines, server.url, sample=300)


def server_inputs(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_inputs_total" and sample.labels.get("model") == MODEL:
                return sample.value
    return 0.0


def model_idle(url: str) -> bool:
    rows = httpx.get(url + "/admin/models", timeout=30).json()["models"]
    return all(row.get("in_flight", 0) == 0 and row.get("queued", 0) == 0 for row in rows)


def settled_inputs(url: str) -> float:
    """The server's inputs count once requests of a killed client have drained: nothing in
    flight or queued (however long that takes on a busy machine), and then no change for 2 s."""
    deadline = time.monotonic() + 300
    while not model_idle(url):
        assert time.monotonic() < deadline, "the killed client's requests never drained"
        time.sleep(0.1)
    last, since = server_inputs(url), time.monotonic()
    while time.monotonic() - since < 2.0:
        time.sleep(0.25)
        now = server_inputs(url)
        if now != last:
            last, since = now, time.monotonic()
    return last


@pytest.mark.timeout(900)
def test_a_killed_run_resumes_and_embeds_only_the_rest(
    uncached_server: GatewayServer, tmp_path: Path
) -> None:
    source, output = tmp_path / "lines.txt", tmp_path / "vectors.npy"
    lines = write_lines(source, 2_000, seed=2)
    command = [
        sys.executable, "-m", "gateway", "embed", str(source), "-m", MODEL, "-o", str(output),
        "--url", uncached_server.url, "--chunk-size", "200", "--batch-size", "50",
        "--concurrency", "2",
    ]  # fmt: skip
    parts = output.with_name(output.name + ".parts")
    run = subprocess.Popen(command, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and run.poll() is None:
            if len(list(parts.glob("chunk-*.npy"))) >= 3:
                break
            time.sleep(0.05)
        assert run.poll() is None, "finished before it could be killed"
        run.send_signal(signal.SIGKILL)
    finally:
        run.kill()
        run.wait()
    done = len(list(parts.glob("chunk-*.npy")))
    assert 3 <= done < 10 and not output.exists()
    before = settled_inputs(uncached_server.url)

    second = subprocess.run(command, cwd=REPO, env=cli_env(), capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    resumed = done * 200
    assert f"resuming: {resumed:,} of 2,000 inputs already embedded" in second.stdout
    assert f"2,000 ({resumed:,} done by an earlier run)" in second.stdout
    assert settled_inputs(uncached_server.url) - before == 2_000 - resumed
    assert not parts.exists()
    assert_same_vectors(output, lines, uncached_server.url, sample=200)


def test_a_folder_of_images_matches_the_api(tmp_path: Path) -> None:
    """An image model embeds a folder (nested, mixed formats) in-process; the server agrees."""
    registry = write_registry(
        tmp_path / "registry.yaml", {"effnet": efficientnet_entry(efficientnet_lite0())}
    )
    images = tmp_path / "images"
    (images / "nested").mkdir(parents=True)
    for i in range(6):
        where = images / "nested" if i % 2 else images
        fmt, suffix = ("PNG", "png") if i % 3 else ("JPEG", "jpg")
        (where / f"photo{i}.{suffix}").write_bytes(encode(photo_like(i, 96, 72), fmt))
    (images / "notes.txt").write_text("not an image: skipped by suffix")
    output = tmp_path / "images.parquet"
    command = [sys.executable, "-m", "gateway", "embed", str(images), "-m", "effnet",
               "-o", str(output), "--registry", str(registry)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, env=cli_env(), capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    ids, vectors = read_output(output)
    assert ids == sorted(p.relative_to(images).as_posix() for p in images.rglob("photo*"))
    with GatewayServer(registry=registry) as server:
        references = [image_data_url(str(images / name)) for name in ids]
        body = {"model": "effnet", "input": references}
        response = httpx.post(server.url + "/api/embed", json=body, timeout=300)
    assert response.status_code == 200, response.text
    expected = np.asarray(response.json()["embeddings"], dtype=np.float32)
    cosine = np.sum(vectors * expected, axis=1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert vectors.shape == (6, 1280) and cosine.min() >= 0.99999, cosine


def test_a_folder_of_images_needs_an_image_model(server: GatewayServer, tmp_path: Path) -> None:
    """A text model would embed each image's data URL as text: refused, in-process and with
    --url, before anything is written."""
    images = tmp_path / "images"
    images.mkdir()
    (images / "photo.png").write_bytes(encode(photo_like(0, 32, 32), "PNG"))
    output = tmp_path / "images.npy"
    for remote in ([], ["--url", server.url]):
        command = [sys.executable, "-m", "gateway", "embed", str(images), "-m", MODEL,
                   "-o", str(output), *remote]  # fmt: skip
        result = subprocess.run(command, cwd=REPO, env=cli_env(), capture_output=True, text=True,
                                timeout=300)  # fmt: skip
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
        assert "a folder of images needs an image model" in result.stderr
        assert list(tmp_path.glob("images.npy*")) == []


def test_an_image_over_the_limit_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    """By the file's size (stat), against the engine's limit: GATEWAY_IMAGE_MAX_BYTES here, or
    the server's, from its /info, with --url. The file was read and base64-encoded whole, and
    the refusal came from the engine once the job had started (leaving its parts folder)."""
    registry = write_registry(
        tmp_path / "registry.yaml", {"effnet": efficientnet_entry(efficientnet_lite0())}
    )
    images = tmp_path / "images"
    images.mkdir()
    (images / "photo.png").write_bytes(encode(photo_like(1, 32, 32), "PNG"))
    with (images / "big.png").open("wb") as big:
        big.truncate(2 << 20)  # sparse: its size is all that may be looked at
    limit = 1 << 20
    said = f"gateway: record 'big.png': the image is larger than the {limit} bytes allowed\n"
    output = tmp_path / "images.npy"
    command = [sys.executable, "-m", "gateway", "embed", str(images), "-m", "effnet",
               "-o", str(output), "--registry", str(registry)]  # fmt: skip
    local = {**cli_env(), "GATEWAY_IMAGE_MAX_BYTES": str(limit)}
    server_env = {"GATEWAY_IMAGE_MAX_BYTES": str(limit)}
    with GatewayServer(registry=registry, env=server_env) as server:
        for env, remote in ((local, []), (cli_env(), ["--url", server.url])):
            result = subprocess.run([*command, *remote], cwd=REPO, env=env, capture_output=True,
                                    text=True, timeout=300)  # fmt: skip
            assert (result.returncode, result.stderr) == (2, said), result.stdout + result.stderr
            assert list(tmp_path.glob("images.npy*")) == [], remote
