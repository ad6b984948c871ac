"""A ColBERT projection (PyLate's Dense layer) read from a file and applied in numpy.

Some exports leave the Dense layer out of the graph, which then emits hidden states; the weight
ships beside it (PyLate saves it as `1_Dense/model.safetensors`, key `linear.weight`, shape
[dim, hidden]). safetensors is a JSON header plus raw little-endian arrays, so it is read here
with numpy alone rather than adding a dependency to the server.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.errors import ModelLoadError
from gateway.redact import runtime_cause

log = logging.getLogger(__name__)

_SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}
_WEIGHT_KEYS = ("linear.weight", "weight")
_BIAS_KEYS = ("linear.bias", "bias")
_MAX_HEADER = 100 * 1024 * 1024  # the format's own limit


@dataclass(frozen=True)
class Projection:
    """y = x @ weight.T + bias, as torch.nn.Linear (PyLate's Dense uses an identity activation)."""

    weight: np.ndarray  # [out, in] float32
    bias: np.ndarray | None = None  # [out] float32

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y: np.ndarray = x @ self.weight.T
        if self.bias is not None:
            y += self.bias
        return y


def load_projection(path: Path) -> Projection:
    """Read a [out, in] weight (and optional bias) from .npy, .npz or .safetensors."""
    try:
        if path.suffix == ".npy":
            tensors = {"weight": np.load(path, allow_pickle=False)}
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                tensors = {key: data[key] for key in data.files}
        elif path.suffix == ".safetensors":
            tensors = read_safetensors(path)
        else:
            raise ModelLoadError(
                f"projection {path.name}: expected a .npy, .npz or .safetensors file"
            )
    except (OSError, ValueError) as exc:
        log.warning("cannot read projection %s: %s", path, exc)
        raise ModelLoadError(f"cannot read projection {path.name}: {runtime_cause(exc)}") from None
    weight = _pick(tensors, _WEIGHT_KEYS, rank=2)
    if weight is None:
        raise ModelLoadError(
            f"projection {path.name}: no 2-D weight (one of {list(_WEIGHT_KEYS)}, or a single "
            f"2-D tensor) among {sorted(tensors)}"
        )
    bias = _pick(tensors, _BIAS_KEYS, rank=1, fallback=False)
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ModelLoadError(f"projection {path.name}: bias does not match the weight's rows")
    return Projection(
        np.ascontiguousarray(weight, dtype=np.float32),
        None if bias is None else np.ascontiguousarray(bias, dtype=np.float32),
    )


def _pick(
    tensors: dict[str, np.ndarray], keys: tuple[str, ...], *, rank: int, fallback: bool = True
) -> np.ndarray | None:
    for key in keys:
        if key in tensors and tensors[key].ndim == rank:
            return tensors[key]
    if fallback:
        candidates = [t for t in tensors.values() if t.ndim == rank]
        if len(candidates) == 1:
            return candidates[0]
    return None


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    if len(data) < 8:
        raise ValueError("file too short")
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > min(_MAX_HEADER, len(data) - 8):
        raise ValueError("bad header size")
    header = json.loads(data[8 : 8 + header_size])
    body = memoryview(data)[8 + header_size :]
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = body[start:end]
        if info["dtype"] == "BF16":
            # bfloat16 is the top half of a float32: widen by shifting into the high bits.
            array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] in _SAFETENSORS_DTYPES:
            array = np.frombuffer(raw, _SAFETENSORS_DTYPES[info["dtype"]])
        else:
            continue  # integer tensors cannot be a projection
        tensors[name] = array.reshape(info["shape"])
    return tensors
