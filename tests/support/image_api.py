"""Material for the image API tests: a 768-wide vision tower in nomic text's space, registry
entries, and image references as clients write them.

- `clip_vision_768`: a seeded random CLIPVisionModel as wide as the tiny NomicBert
  (tools/exports.py), so that its registry entry may name that model as `text_model`.
  One layer, a small MLP and 32-pixel patches keep the export to seconds; `initializer_factor`
  3 makes the CLS output depend strongly on the pixels (at the default factor, one layer gives
  different pictures cosines up to 0.997, too close to the parity bound to mean anything).
"""

from __future__ import annotations

import base64
from pathlib import Path

from tools.exports import cached_export
from tools.vision import clip_vision_model, export_hidden_states

CLIP_768 = "clip-vision-768"
CLIP_768_VERSION = "h768-l1-i256-p32-factor3-seed0-opset17-r1"
VISION_DIM = 768
# Widths the test entry allows; the text model allows these and more (128, 64).
VISION_DIMENSIONS = [768, 512, 256]


def clip_vision_768() -> Path:
    """Folder with model.onnx (float NCHW -> last_hidden_state), preprocessor_config.json in
    nomic-embed-vision's form, and torch/ (the same weights for transformers)."""
    return cached_export(CLIP_768, CLIP_768_VERSION, _build)


def _build(folder: Path) -> None:
    model = clip_vision_model(
        folder,
        hidden_size=VISION_DIM,
        intermediate_size=256,
        num_hidden_layers=1,
        num_attention_heads=12,
        initializer_range=0.2,
        initializer_factor=3.0,
    )
    export_hidden_states(model, folder / "model.onnx")


# -- registry entries ----------------------------------------------------------------------------


def vision_entry(folder: Path, **overrides: object) -> dict:
    """The repository's nomic-embed-vision entry in shape, serving the 768-wide test tower."""
    entry: dict = {
        "kind": "image",
        "description": "tiny random-weight CLIP vision tower in nomic-embed-text's space",
        "family": "nomic-vit",
        "parameter_size": "4M",
        "source": str(folder),
        "files": {"model": "model.onnx", "preprocessor": "preprocessor_config.json"},
        "dim": VISION_DIM,
        "dimensions": VISION_DIMENSIONS,
        "image_size": 224,
        "resize": "shortest_edge",
        "resample": "bicubic",
        "pooling": "cls",
        "text_model": "nomic-embed-text",
        "text_task": "query",
    }
    entry.update(overrides)
    return entry


def efficientnet_entry(folder: Path) -> dict:
    """EfficientNet-Lite0 (real ImageNet weights): an image-only model, TF-Lite preprocessing."""
    return {
        "kind": "image",
        "description": "EfficientNet-Lite0 ImageNet features (image only)",
        "family": "efficientnet",
        "parameter_size": "4.7M",
        "source": str(folder),
        "files": {"model": "model.onnx"},
        "dim": 1280,
        "image_size": 224,
        "resize": "shortest_edge",
        "resample": "bilinear",
        # TF-Lite's (x - 127) / 128 on raw 0..255 values.
        "rescale": 1.0,
        "mean": [127.0, 127.0, 127.0],
        "std": [128.0, 128.0, 128.0],
        "pooling": "none",
    }


# -- image references as clients send them -------------------------------------------------------

MIME = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG": "image/png",
    b"GIF8": "image/gif",
    b"RIFF": "image/webp",
    b"BM": "image/bmp",
    b"II*\x00": "image/tiff",
    b"MM\x00*": "image/tiff",
}


def mime_of(data: bytes) -> str:
    for magic, mime in MIME.items():
        if data.startswith(magic):
            return mime
    return "image/png"  # bad images: the type a careless client would claim


def raw_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def data_url(data: bytes) -> str:
    return f"data:{mime_of(data)};base64,{raw_base64(data)}"
