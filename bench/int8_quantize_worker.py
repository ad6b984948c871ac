"""Static int8 of an ONNX text encoder with NNCF, run in its own venv (bench/static_int8.py).

Post-training quantization calibrated on real texts (activations and weights int8, scales fixed
at calibration: batch-invariant, unlike dynamic quantization). Imports only the standard library,
numpy, tokenizers, openvino and nncf: the gateway is not installed in that venv.

    python int8_quantize_worker.py MODEL.onnx TOKENIZER.json CALIBRATION.json OUT.xml [nosq]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    import nncf
    import numpy as np
    import openvino as ov
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )
    from tokenizers import Tokenizer

    onnx, tokenizer_json, calibration, out = sys.argv[1:5]
    smooth_quant = not (len(sys.argv) > 5 and sys.argv[5] == "nosq")
    tokenizer = Tokenizer.from_file(tokenizer_json)
    tokenizer.no_padding()
    tokenizer.enable_truncation(256)
    texts = json.loads(Path(calibration).read_text())
    model = ov.Core().read_model(onnx)
    names = [port.get_any_name() for port in model.inputs]

    def feed(text: str) -> dict[str, object]:
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        inputs = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        }
        return {name: inputs[name] for name in names}

    advanced = None
    if not smooth_quant:  # alpha -1 turns SmoothQuant off for MatMuls
        advanced = AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1)
        )
    quantized = nncf.quantize(
        model,
        nncf.Dataset(texts, feed),
        model_type=nncf.ModelType.TRANSFORMER,
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(texts),
        advanced_parameters=advanced,
    )
    ov.save_model(quantized, out, compress_to_fp16=False)
    print(json.dumps({"saved": out, "nncf": nncf.__version__, "openvino": ov.get_version()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
