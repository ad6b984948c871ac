"""The seam between encoders and compute backends.

An encoder hands a backend session a padded batch (a feed of named arrays) and gets the graph's
outputs back, as it did with an ONNX Runtime InferenceSession. Backends differ in how they
load a graph (precision, device, on-disk cache) and how they run it; encoders do not see that.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)

BackendName = Literal["onnxruntime", "openvino"]
Precision = Literal["fp32", "bf16", "fp16"]
BACKEND_CHOICES = ("auto", "onnxruntime", "openvino")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
# int8 is not a precision this gateway runs at: refused where it is set (GATEWAY_PRECISION,
# --precision, a registry entry's precision:), not at each load.
INT8_REFUSED = (
    "int8 is not offered: static int8 needs a calibrated graph, which this gateway does not "
    "build, and dynamic int8 is not batch-invariant; a graph with int8 weights (such as the "
    "bundled all-minilm) runs as given with precision auto, fp32 or bf16"
)


def check_precision(value: str) -> str:
    """`value` when it is one of PRECISION_CHOICES; ValueError saying why otherwise."""
    if value == "int8":
        raise ValueError(INT8_REFUSED)
    if value not in PRECISION_CHOICES:
        raise ValueError(f"expected one of {', '.join(PRECISION_CHOICES)}, got {value!r}")
    return value


# Ops whose activation scale is computed over the whole input tensor, i.e. over every row of a
# batch: a text's vector then depends on what it was batched with.
DYNAMIC_QUANT_OPS = (b"DynamicQuantizeLinear", b"DynamicQuantizeMatMul", b"DynamicQuantizeLSTM")
SCAN_CHUNK_BYTES = 16 << 20


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int | str | None, ...]
    type: str

    @property
    def is_float(self) -> bool:
        return "float" in self.type


@dataclass(frozen=True)
class GraphInfo:
    """What an encoder needs to know about a loaded graph."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    dynamic_quantization: bool

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)


def uses_dynamic_quantization(path: Path) -> bool:
    """True when the graph quantizes activations dynamically.

    Op types are stored as plain strings in the ONNX protobuf, so scanning the bytes finds them
    without parsing (or depending on) the onnx package. Read in chunks, never mapped: a file
    truncated while a mapping is read raises SIGBUS, which kills the whole server (a model file
    cut during its load did); a read just ends early.
    """
    overlap = max(len(op) for op in DYNAMIC_QUANT_OPS) - 1
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(SCAN_CHUNK_BYTES):
            window = tail + chunk
            if any(op in window for op in DYNAMIC_QUANT_OPS):
                return True
            tail = window[-overlap:]
    return False


@dataclass(frozen=True)
class Placement:
    """Where and how one model runs, and why that was chosen."""

    backend: BackendName
    device: Literal["cpu", "cuda"]
    precision: Precision
    reason: str
    # Pad sequence inputs to fixed lengths (see buckets.py): needed where kernels are chosen
    # by shape, so a text must see the same padded length alone and in any batch.
    bucketed: bool = False
    # The smallest bucket step past 16 tokens (buckets.bucket_length).
    bucket_step: int = 8

    def describe(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "device": self.device,
            "precision": self.precision,
            "bucketed": self.bucketed,
            "bucket_step": self.bucket_step if self.bucketed else None,
            "reason": self.reason,
        }


class BackendSession(ABC):
    """A loaded graph. The calls mirror ONNX Runtime's InferenceSession, which encoders use."""

    placement: Placement

    @abstractmethod
    def run(
        self, output_names: Sequence[str] | None, feed: dict[str, np.ndarray]
    ) -> list[np.ndarray]:
        """Run one padded batch; the named outputs (all when None), in order."""

    @abstractmethod
    def graph_info(self) -> GraphInfo:
        """Inputs and outputs of the graph as loaded."""

    def get_providers(self) -> list[str]:
        return []

    def release_memory(self) -> None:
        """Free the working memory kept from earlier runs (the next run allocates afresh).
        Called between runs, on the thread that runs them; a no-op where nothing is kept."""
        return None

    def describe(self) -> dict[str, object]:
        return self.placement.describe()


class Backend(ABC):
    """Loads graphs for one backend on one device."""

    @abstractmethod
    def load(self, path: Path, placement: Placement) -> BackendSession:
        """Load the ONNX graph at `path` as `placement` says (raises on a bad file)."""

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """Versions and settings. Nothing serves this yet: `runtime` in GET /info comes from
        Runtime.describe() (there is no /api/info)."""


# Where exporters keep a large graph's weights beside it (torch, optimum, transformers.js:
# model.onnx_data); what is derived from the graph depends on them too.
EXTERNAL_DATA_SUFFIXES = ("_data", ".data")


def external_data_files(path: Path) -> list[Path]:
    """The external-data files beside the graph at `path`, by the exporters' names."""
    beside = (path.with_name(path.name + suffix) for suffix in EXTERNAL_DATA_SUFFIXES)
    return [data for data in beside if data.is_file()]


def file_cache_key(path: Path, *versions: str) -> str:
    """A short key for what is cached from the file at `path`: its place, size and mtime, and
    those of its external-data file (a replaced graph or weights file gets a new key), and
    whatever else the cached artefact depends on."""
    parts = [str(path.resolve())]
    for source in (path, *external_data_files(path)):
        stat = source.stat()
        parts += [source.name, str(stat.st_size), str(stat.st_mtime_ns)]
    return hashlib.sha256("|".join([*parts, *versions]).encode()).hexdigest()[:16]


def cache_file(
    folder: Path, path: Path, label: str, *, versions: Sequence[str], beside: Sequence[str] = ()
) -> Path:
    """Where a graph derived from the file at `path` is cached: `<stem>-<label>-<owner>-<key>.onnx`.

    The owner (8 hex) names the source file, `label` and what tells apart entries that may live
    side by side (`beside`: the providers, the CPU); the key (16 hex) adds its version
    (`file_cache_key`: size, mtime) and the runtime's (`versions`). A new key under an old owner
    is a replaced file or a new runtime, and the old entry is stale (`drop_stale_cache_files`).
    """
    owner = hashlib.sha256("|".join([str(path.resolve()), label, *beside]).encode()).hexdigest()
    key = file_cache_key(path, *versions, *beside)
    return folder / f"{path.stem}-{label}-{owner[:8]}-{key}.onnx"


def drop_stale_cache_files(entry: Path, first_layout: str) -> None:
    """Before `entry` (from `cache_file`) is written: remove its owner's other entries and what
    was cached from them (`<their stem>-...`), names of the first layout
    (`<first_layout><16 hex>.onnx`, never read again), and partial writes left by processes
    that are gone."""
    if not entry.parent.is_dir():
        return
    owner = entry.name[: -len("-0123456789abcdef.onnx")] + "-"
    first = re.compile(re.escape(first_layout) + r"[0-9a-f]{16}\.onnx")
    files = [f for f in entry.parent.iterdir() if f.is_file() and f != entry]
    stale_stems = []
    for other in files:
        name = other.name
        if name.endswith(".partial.onnx"):
            stale = name.startswith(owner) and not _process_alive(name.split(".")[-3])
        else:
            stale = name.startswith(owner) or bool(first.fullmatch(name))
        if stale:
            stale_stems.append(f"{other.stem}-")
    for other in files:
        if other.name.startswith(tuple(stale_stems)) or f"{other.stem}-" in stale_stems:
            log.info("dropping a stale cached graph: %s", other.name)
            other.unlink(missing_ok=True)


def _process_alive(pid: str) -> bool:
    """Whether the process that named a partial write is still running (it may be writing)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):  # not a pid, or another user's live process
        return True
    return True
