"""fastembed, run inside its own venv (bench/peer_envs.py) and driven over stdin/stdout.

It loads the bench model's own ONNX file from a local folder (fastembed's `add_custom_model` +
`specific_model_path`, no download), with mean pooling and L2 normalization like the other rows.
Each request is one JSON line; each answer one JSON line. This file imports only the standard
library, numpy, fastembed and its tokenizers: the gateway is not installed in that venv.

    {"op": "embed", "texts": "<json file>", "out": "<npy file>", "batch_size": 32}
      -> {"wall_s": ..., "padding_ratio": ...}
    {"op": "single", "text": "...", "times": 10} -> {"latencies_s": [...]}

fastembed pads each batch to its longest text and keeps the order it is given, so the worker
hands it the texts sorted by token count (counted with the model's tokenizer.json inside the
clock, as raw ORT sorts) and puts the vectors back in input order: every system at its best. In
input order the bench's shuffled sentences padded 3.2 tokens per real one at batch 32 (1.1
sorted) and ran at half the rate. `padding_ratio` (padded / real tokens of those batches) says
what it ran.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def load(folder: Path, threads: int):  # type: ignore[no-untyped-def]
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    name = "bench/local-model"
    TextEmbedding.add_custom_model(
        model=name,
        pooling=PoolingType.MEAN,
        normalization=True,
        sources=ModelSource(hf="bench/local-model"),
        dim=int(json.loads((folder / "config.json").read_text())["hidden_size"]),
        model_file="model.onnx",
    )
    return TextEmbedding(
        model_name=name, specific_model_path=str(folder), threads=threads, local_files_only=True
    )


def padding_ratio(lengths: list[int], batch: int) -> float:
    """Padded over real tokens of batches of `batch` in this order, each padded to its longest."""
    padded = sum(
        max(lengths[i : i + batch]) * len(lengths[i : i + batch])
        for i in range(0, len(lengths), batch)
    )
    return padded / max(sum(lengths), 1)


def embed_sorted(model, counter, texts: list[str], batch: int):  # type: ignore[no-untyped-def]
    """(vectors in input order, wall seconds, padding ratio) of one embed of `texts`, sorted by
    token count (counted inside the clock, as raw ORT's sort is)."""
    import numpy as np

    started = time.perf_counter()
    lengths = [len(e.ids) for e in counter.encode_batch(texts)]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    ordered = np.stack(list(model.embed([texts[i] for i in order], batch_size=batch)))
    vectors = np.empty_like(ordered)
    vectors[order] = ordered
    wall = time.perf_counter() - started
    return vectors, wall, padding_ratio([lengths[i] for i in order], batch)


def main() -> int:
    import numpy as np
    from tokenizers import Tokenizer

    folder, threads = Path(sys.argv[1]), int(sys.argv[2])
    model = load(folder, threads)
    counter = Tokenizer.from_file(str(folder / "tokenizer.json"))
    counter.no_padding()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "embed":
            texts = json.loads(Path(request["texts"]).read_text())
            vectors, wall, ratio = embed_sorted(model, counter, texts, request["batch_size"])
            np.save(request["out"], vectors.astype(np.float32))
            print(json.dumps({"wall_s": wall, "padding_ratio": ratio}), flush=True)
        else:
            latencies = []
            for _ in range(request["times"]):
                started = time.perf_counter()
                list(model.embed([request["text"]]))
                latencies.append(time.perf_counter() - started)
            print(json.dumps({"latencies_s": latencies}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
