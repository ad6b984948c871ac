"""fastembed, run inside its own venv (bench/peer_envs.py) and driven over stdin/stdout.

It loads the bench model's own ONNX file from a local folder (fastembed's `add_custom_model` +
`specific_model_path`, no download), with mean pooling and L2 normalization like the other rows.
Each request is one JSON line; each answer one JSON line. This file imports only the standard
library, numpy and fastembed: the gateway is not installed in that venv.

    {"op": "embed", "texts": "<json file>", "out": "<npy file>", "batch_size": 32}
      -> {"wall_s": ...}
    {"op": "single", "text": "...", "times": 10} -> {"latencies_s": [...]}
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


def main() -> int:
    import numpy as np

    folder, threads = Path(sys.argv[1]), int(sys.argv[2])
    model = load(folder, threads)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "embed":
            texts = json.loads(Path(request["texts"]).read_text())
            started = time.perf_counter()
            vectors = np.stack(list(model.embed(texts, batch_size=request["batch_size"])))
            wall = time.perf_counter() - started
            np.save(request["out"], vectors.astype(np.float32))
            print(json.dumps({"wall_s": wall}), flush=True)
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
