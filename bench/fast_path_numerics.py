"""Parity and batch invariance of every model kind on each fast-path precision.

`python -m bench.fast_path_numerics` prints one table row per kind and precision (OpenVINO
bf16 and fp32, bucketed) against ONNX Runtime fp32; the test models are the test suite's
exports (built and cached on first use).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Collection

from gateway.runtime import Runtime
from tools.colbert_models import bert_colbert, modernbert_colbert
from tools.cross_encoder import cross_encoder_dir
from tools.exports import export_minilm_fp32, export_tiny_nomic
from tools.fast_path import (
    HEADER,
    Case,
    colbert_case,
    cross_case,
    measure,
    minilm_case,
    mixed_texts,
    nomic_case,
    vision_case,
)
from tools.models import pull_default_model
from tools.vision import clip_vision_tiny


def all_cases(kinds: Collection[str] | None = None, texts_count: int = 40) -> list[Case]:
    """The cases of `kinds` (all when None), built (exported, cached) only when asked for."""
    texts = mixed_texts(texts_count)
    bundled = pull_default_model()
    tokenizer = bundled / "tokenizer.json"
    builders: dict[str, Callable[[], Case]] = {
        "all-minilm (int8 weights)": lambda: minilm_case(
            "all-minilm (int8 weights)", bundled, texts
        ),
        "minilm fp32": lambda: minilm_case("minilm fp32", export_minilm_fp32(), texts),
        "nomic-text": lambda: nomic_case(export_tiny_nomic(), texts),
        "vision": lambda: vision_case(clip_vision_tiny()),
        "colbert-bert": lambda: colbert_case(bert_colbert(tokenizer), texts),
        "colbert-modernbert": lambda: colbert_case(modernbert_colbert(), texts),
        "cross-encoder": lambda: cross_case(cross_encoder_dir(tokenizer), texts),
    }
    return [build() for kind, build in builders.items() if kinds is None or kind in kinds]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", default="bf16,fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    exact = Runtime(device="cpu", threads=args.threads)
    rows = []
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for case in all_cases():
        for precision in args.precisions.split(","):
            fast = Runtime(
                device="cpu", threads=args.threads, backend="openvino", precision=precision
            )
            figures = measure(case, fast, exact)
            rows.append(figures.__dict__)
            print("| " + " | ".join(figures.row()) + " |", flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
