"""What every registry entry has, whatever its kind: its files (`FileRef`) and the `ModelSpec`
base struct, which also answers the kind-neutral questions with "not this kind's business"
defaults that the kind structs in gateway.specs override.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import msgspec

from gateway.backends.base import check_precision
from gateway.units import parse_bytes, parse_duration

# A registry fact as /api/show lists it.
FactValue = str | int | bool | list[int] | dict[str, str] | None


class FileRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One file of a model: its path inside the source, and optionally another source."""

    path: str
    source: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if self.sha256 is not None and (
            len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256)
        ):
            raise ValueError("sha256 must be 64 lowercase hex characters")


class ModelSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    """Fields every kind of model has."""

    name: str
    files: dict[str, FileRef]
    source: str | None = None
    aliases: list[str] = []
    description: str = ""
    family: str = "bert"
    parameter_size: str = ""
    quantization: str = "F32"
    license: str | None = None
    # ONNX graph names, by role; auto-detected when omitted.
    inputs: dict[str, str] = {}
    output: str | None = None
    # Lifecycle.
    keep_alive: str | float | None = None
    pinned: bool = False
    memory_estimate: str | int | None = None
    # Scheduling; process-wide settings apply when omitted.
    max_batch_size: int | None = None
    max_batch_tokens: int | None = None
    # Pins the batcher's padding-vs-run trade-off instead of timing it at load (run_overhead.py).
    run_overhead_tokens: float | None = None
    # Compute; the process-wide GATEWAY_BACKEND / GATEWAY_PRECISION apply when omitted.
    backend: Literal["auto", "onnxruntime", "openvino"] | None = None
    # "int8" parses so that __post_init__ can say why it is refused.
    precision: Literal["auto", "fp32", "bf16", "int8", "fp16"] | None = None

    required_files: ClassVar[tuple[str, ...]] = ("model",)

    def __post_init__(self) -> None:
        for role in self.required_files:
            if role not in self.files:
                raise ValueError(f"files.{role} is required for a {self.kind} model")
        for role, ref in self.files.items():
            if ref.source is None and self.source is None:
                raise ValueError(f"files.{role} has no source and the model has none")
        if self.precision is not None:
            try:
                check_precision(self.precision)
            except ValueError as exc:
                raise ValueError(f"precision: {exc}") from None
        if self.keep_alive is not None:
            parse_duration(self.keep_alive)
        if self.memory_estimate is not None:
            parse_bytes(self.memory_estimate)
        for knob in ("max_batch_size", "max_batch_tokens"):
            value = getattr(self, knob)
            if value is not None and value < 1:
                raise ValueError(f"{knob} must be at least 1")
        if self.run_overhead_tokens is not None and not 0 <= self.run_overhead_tokens <= 1e6:
            raise ValueError("run_overhead_tokens must be within 0..1000000")

    @property
    def kind(self) -> str:
        return type(self).__struct_config__.tag  # type: ignore[return-value]

    @property
    def keep_alive_seconds(self) -> float | None:
        return None if self.keep_alive is None else parse_duration(self.keep_alive)

    @property
    def memory_estimate_bytes(self) -> int | None:
        return None if self.memory_estimate is None else parse_bytes(self.memory_estimate)

    @property
    def tasks(self) -> tuple[str, ...]:
        return ()

    def prefixes_for(self, texts: Sequence[str], task: str | None) -> list[str]:
        """The task prefix put before each of `texts`: none, unless the model has prefixes."""
        return [""] * len(texts)

    @property
    def context_length(self) -> int | None:
        """Tokens one input may hold (what Ollama reports as context_length); None: no text."""
        return None

    @property
    def position_limit(self) -> int | None:
        """The longest input `truncate: false` accepts (the graph's positions); None: no text."""
        return self.context_length

    @property
    def vector_width(self) -> int | None:
        """Width of the vectors the model gives (one per input, or per token); None: none."""
        return None

    @property
    def output_widths(self) -> list[int]:
        """Advertised (recommended) Matryoshka widths, widest (native) first; a request may ask
        for any width from 1 to the native one. Empty: not adjustable."""
        return []

    @property
    def paired_text_model(self) -> str | None:
        """The text model whose vector space this model shares (image towers)."""
        return None

    @property
    def paired_text_task(self) -> str | None:
        """The task texts sent to this model are embedded with by its paired text model."""
        return None

    def public_facts(self) -> dict[str, FactValue]:
        """Registry facts a client may want to see (prefixes, Matryoshka widths, pooling)."""
        return {}
