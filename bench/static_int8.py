"""Does static int8 beat bf16 on the CPU fast path? Throughput, parity and batch invariance.

    python -m bench.static_int8 [--reps 3]

NNCF (its own venv, bench/peer_envs.py) quantizes the bench's all-MiniLM-L6-v2 fp32 ONNX
statically, calibrated on 360 bench texts that the evaluation does not use, with and without
SmoothQuant. Each graph is compiled by OpenVINO with the gateway's settings and run in-process
on 768 sentences (batches of 32) and 64 passages (batches of 8), padded to the gateway's shape
buckets and mean-pooled as the gateway does. Printed per variant: texts/s (median of
interleaved reps), cos to OpenVINO fp32 (min and mean) and the largest change of a vector
between running alone and in a batch of 32 from its bucket. The issue's bar for a precision on
the fast path: cos >= 0.999 and invariance <= 1e-5.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from bench.corpora import build_workloads
from bench.models import REPO, load_model
from bench.peer_envs import Peer, ensure_peer
from gateway.backends.buckets import bucket_length
from gateway.backends.openvino_cpu import OpenVinoBackend, OpenVinoOptions

OUT = REPO / ".cache" / "bench-int8"


def nncf_peer() -> Peer:
    import openvino

    # The same OpenVINO as the gateway's, so the IR it writes is the one this process reads.
    version = openvino.get_version().split("-")[0]
    return Peer("nncf", (("nncf", f"openvino=={version}", "tokenizers", "numpy"),), ("nncf",))


def quantize(python: Path, onnx: Path, tokenizer: Path, texts: Sequence[str], smooth: bool) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    calibration = OUT / "calibration.json"
    calibration.write_text(json.dumps(list(texts)))
    out = OUT / ("minilm-int8.xml" if smooth else "minilm-int8-nosq.xml")
    worker = Path(__file__).with_name("int8_quantize_worker.py")
    args = [str(python), str(worker), str(onnx), str(tokenizer), str(calibration), str(out)]
    subprocess.run([*args] if smooth else [*args, "nosq"], check=True, timeout=900)
    return out


class Variant:
    def __init__(self, backend: OpenVinoBackend, path: Path, precision: str) -> None:
        self.compiled = backend.core.compile_model(str(path), "CPU", backend.config(precision))
        self.request = self.compiled.create_infer_request()
        self.names = [port.get_any_name() for port in self.compiled.inputs]

    def embed(self, ids: np.ndarray) -> np.ndarray:
        mask = (ids != 0).astype(np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        result = self.request.infer({name: feed[name] for name in self.names})
        hidden = np.asarray(result[self.compiled.outputs[0]], dtype=np.float32)
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        normalized: np.ndarray = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return normalized


def batches(
    tokenizer: Tokenizer, texts: Sequence[str], size: int
) -> Iterator[tuple[list[int], np.ndarray]]:
    """Length-sorted batches padded to the gateway's bucket of their longest text."""
    encoded = [tokenizer.encode(text).ids for text in texts]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        ids = np.zeros((len(rows), bucket_length(max(len(encoded[i]) for i in rows))), np.int64)
        for row, i in enumerate(rows):
            ids[row, : len(encoded[i])] = encoded[i]
        yield rows, ids


def vectors(variant: Variant, prepared: list[tuple[list[int], np.ndarray]], n: int) -> np.ndarray:
    out = np.zeros((n, 384), np.float32)
    for rows, ids in prepared:
        out[rows] = variant.embed(ids)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    model = load_model("minilm")
    tokenizer = Tokenizer.from_file(str(model.tokenizer))
    tokenizer.no_padding()
    tokenizer.enable_truncation(256)
    workloads = build_workloads(model.tokenizer)
    sentences, passages = workloads["sentences"].texts, workloads["passages"].texts
    env = ensure_peer(nncf_peer())
    if env.python is None:
        print(f"nncf venv unavailable: {env.error}")
        return 1
    calibration = [*sentences[1000:1300], *passages[200:260]]  # not among the evaluated texts
    backend = OpenVinoBackend(OpenVinoOptions(2, cache_dir=None))
    variants = {
        "fp32": Variant(backend, model.onnx, "fp32"),
        "bf16": Variant(backend, model.onnx, "bf16"),
    }
    for smooth in (True, False):
        graph = quantize(env.python, model.onnx, model.tokenizer, calibration, smooth)
        tag = "int8" if smooth else "int8 (no SmoothQuant)"
        variants[f"{tag}, rest fp32"] = Variant(backend, graph, "fp32")
        variants[f"{tag}, rest bf16"] = Variant(backend, graph, "bf16")
    result: dict[str, dict[str, Any]] = {name: {} for name in variants}
    loads = (("sentences", sentences[:768], 32), ("passages", passages[:64], 8))
    for workload, texts, size in loads:
        prepared = list(batches(tokenizer, texts, size))
        reference = vectors(variants["fp32"], prepared, len(texts))
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.reps):  # interleaved: this VM's speed drifts between minutes
            for name, variant in variants.items():
                vectors(variant, prepared[:2], len(texts))  # warm
                started = time.perf_counter()
                vectors(variant, prepared, len(texts))
                rates[name].append(len(texts) / (time.perf_counter() - started))
        for name, variant in variants.items():
            cos = (vectors(variant, prepared, len(texts)) * reference).sum(1)
            result[name][workload] = (statistics.median(rates[name]), cos.min(), cos.mean())
    encoded = [(text, len(tokenizer.encode(text).ids)) for text in sentences[:768]]
    same_bucket = [text for text, n in encoded if bucket_length(n) == 16][:32]
    together_batches = list(batches(tokenizer, same_bucket, 32))
    for name, variant in variants.items():
        together = vectors(variant, together_batches, len(same_bucket))
        alone = np.concatenate(
            [vectors(variant, list(batches(tokenizer, [t], 1)), 1) for t in same_bucket]
        )
        result[name]["invariance"] = float(np.abs(together - alone).max())
    print(f"static int8 study, nncf {env.versions.get('nncf')}, {args.reps} interleaved reps")
    print(
        "| variant | sentences texts/s | cos min / mean | passages texts/s | cos min / mean "
        "| alone vs batch, max abs |"
    )
    print("|---|---|---|---|---|---|")
    for name, row in result.items():
        s, p = row["sentences"], row["passages"]
        print(
            f"| {name} | {s[0]:.1f} | {s[1]:.5f} / {s[2]:.5f} | {p[0]:.1f} "
            f"| {p[1]:.5f} / {p[2]:.5f} | {row['invariance']:.1e} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
