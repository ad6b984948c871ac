"""Rows beside raw ONNX Runtime: raw OpenVINO in-process, and fastembed in its own venv.

`RawOpenVino` is the fast path's ceiling: the same tokenizer, sorted batches and pooling as raw
ORT, the same ONNX file compiled by OpenVINO (bf16 or fp32 inference precision, the gateway's
compile settings) and run through the gateway's own OpenVINO session (so the way the runtime is
called is the same on both sides), without the gateway's shape buckets, queue or HTTP.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import cast

import numpy as np

from bench.corpora import Workload
from bench.embedders import OrtEmbedder
from bench.models import BenchModel
from bench.systems import Load, Measured, SortedBatchesSystem, System
from gateway.backends.base import Placement, Precision


class OpenVinoEmbedder(OrtEmbedder):
    """OrtEmbedder's tokenizing, batching and pooling around an OpenVINO compiled model."""

    def __init__(self, onnx: Path, tokenizer_json: Path, precision: str) -> None:
        super().__init__(onnx, tokenizer_json)
        from gateway.backends.openvino_cpu import OpenVinoBackend, OpenVinoOptions, OpenVinoSession

        backend = OpenVinoBackend(OpenVinoOptions(self.threads, cache_dir=None))
        compiled = backend.core.compile_model(str(onnx), "CPU", backend.config(precision))
        unpadded = Placement("openvino", "cpu", cast(Precision, precision), "bench", bucketed=False)
        self.ov_session = OpenVinoSession(compiled, unpadded, onnx)
        self.input_names = set(self.ov_session.graph_info().input_names)

    def infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's first output (the last hidden state) for one batch that OrtEmbedder
        padded to its longest row, and pools."""
        return self.ov_session.run(None, feed)[0]


class FastEmbed(System):
    """fastembed's TextEmbedding in a worker process of its own venv (bench/fastembed_worker.py),
    given the texts sorted by length like every in-process row (its padding ratio recorded)."""

    key = "fastembed"

    def __init__(self, model: BenchModel, python: Path, threads: int, batch_size: int) -> None:
        self.label = f"(f) fastembed in-process (own venv), length-sorted bs{batch_size}"
        self.batch_size = batch_size
        self.folder = Path(tempfile.mkdtemp(prefix="bench-fastembed-"))
        # fastembed reads the tokenizer's side files next to the ONNX file.
        (self.folder / "model.onnx").symlink_to(model.onnx)
        (self.folder / "tokenizer.json").symlink_to(model.tokenizer)
        for name in ("config.json", "tokenizer_config.json", "special_tokens_map.json"):
            (self.folder / name).symlink_to(model.st_folder / name)
        worker = Path(__file__).with_name("fastembed_worker.py")
        self.process = subprocess.Popen(
            [str(python), str(worker), str(self.folder), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.server_pid = self.process.pid
        ready = self._answer()
        if not ready.get("ready"):
            raise RuntimeError(f"fastembed worker did not start: {ready}")

    def _answer(self) -> dict[str, object]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"fastembed worker exited ({self.process.poll()})")
        answer: dict[str, object] = json.loads(line)
        return answer

    def _ask(self, request: dict[str, object]) -> dict[str, object]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def measure(self, workload: Workload, load: Load | None) -> Measured:
        texts, out = self.folder / "texts.json", self.folder / "vectors.npy"
        texts.write_text(json.dumps(list(workload.texts)))
        started = time.perf_counter()
        answer = self._ask(
            {"op": "embed", "texts": str(texts), "out": str(out), "batch_size": self.batch_size}
        )
        total = time.perf_counter() - started
        wall = float(answer["wall_s"])  # type: ignore[arg-type]
        extra = {"ipc_s": total - wall, "padding_ratio": answer["padding_ratio"]}
        return Measured(wall, np.load(out), extra=extra)

    def single(self, text: str, times: int) -> list[float]:
        answer = self._ask({"op": "single", "text": text, "times": times})
        return [float(x) for x in answer["latencies_s"]]  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()  # type: ignore[union-attr]
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class RawOpenVino(SortedBatchesSystem):
    """(g) raw OpenVINO in-process, sorted batches: the fast path's own ceiling."""

    def __init__(self, embedder: OpenVinoEmbedder, precision: str, batch_size: int) -> None:
        super().__init__(embedder, batch_size)
        self.key = f"raw-ov-{precision}"
        self.label = f"(g) raw OpenVINO {precision} in-process, sorted bs{batch_size}"
