"""Runtime messages reach clients without the server's paths (gateway/redact.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import InsufficientStorage, ModelLoadError
from gateway.load_errors import load_error, pull_error
from gateway.redact import runtime_cause, without_paths
from gateway.sources import StorageFull

# The shapes ONNX Runtime 1.2x and OpenVINO 2025 raise for a file that is not an ONNX graph.
ORT_BAD_FILE = (
    "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from "
    "/srv/gateway/models/corrupt/model.onnx failed:Protobuf parsing failed."
)
OV_BAD_FILE = (
    "Exception from src/inference/src/cpp/core.cpp:132:\n"
    "Exception from src/inference/src/model_reader.cpp:148:\n"
    'Unable to read the model: "/srv/gateway/models/corrupt/model.onnx" Please check that model '
    'format: ".onnx" is supported and the model is correct.\n\n'
)


def test_onnxruntime_message_keeps_the_cause_and_the_file_name() -> None:
    assert runtime_cause(RuntimeError(ORT_BAD_FILE)) == (
        "Load model from model.onnx failed:Protobuf parsing failed."
    )


def test_openvino_message_skips_its_source_trace() -> None:
    cause = runtime_cause(RuntimeError(OV_BAD_FILE))
    assert cause.startswith('Unable to read the model: "model.onnx" Please check')
    assert "/srv" not in cause and "Exception from" not in cause


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("open /a/b/c.bin failed", "open c.bin failed"),
        ("'/x/y.npy': bad", "'y.npy': bad"),
        ("(/models/m/tokenizer.json)", "(tokenizer.json)"),
        ("see https://example.org/a/b", "see https://example.org/a/b"),
        ("relative src/cpp/core.cpp:12 stays", "relative src/cpp/core.cpp:12 stays"),
        ("a lone / or /root alone", "a lone / or /root alone"),
    ],
)
def test_without_paths(text: str, expected: str) -> None:
    assert without_paths(text) == expected


def test_an_empty_message_names_the_exception() -> None:
    assert runtime_cause(ValueError("")) == "ValueError"


def test_load_error_of_an_os_error_names_only_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "deep" / "model.onnx"
    error = load_error("m", FileNotFoundError(2, "No such file or directory", str(missing)))
    assert isinstance(error, ModelLoadError)
    assert error.message == "model 'm' could not be loaded: No such file or directory (model.onnx)"


def test_load_error_of_anything_else_carries_no_path() -> None:
    error = load_error("m", KeyError("/srv/gateway/models/m/config.json"))
    assert "/srv" not in error.message and "config.json" in error.message


def test_a_full_disk_is_named_without_its_path() -> None:
    full = StorageFull("no space left on the disk of /srv/gateway/models (No space left on device)")
    error = pull_error("m", full)
    assert isinstance(error, InsufficientStorage) and error.status_code == 507
    assert "/srv" not in error.message and "the disk of models" in error.message
