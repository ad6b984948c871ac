"""Runtime messages as a client may see them: file names, never where files live.

Runtimes put absolute paths in their messages ("Load model from /models/x/model.onnx failed"),
and a port exposed to the internet should not map the server's disk. The log keeps the full text.
"""

from __future__ import annotations

import re

# An absolute POSIX path of two or more parts (not a URL's); its last part is kept.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s/:'\"]+/)+([^\s/:'\"]+)")
# ONNX Runtime's status prefix, e.g. "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : ".
_ORT_STATUS = re.compile(r"\[ONNXRuntimeError\] : \d+ : \w+ : ")
# OpenVINO's lines naming its own source files ("Exception from src/inference/...:") before the
# one that says what is wrong.
_OV_TRACE = "Exception from "


def without_paths(text: str) -> str:
    """`text` with every absolute path cut to its last part."""
    return _ABSOLUTE_PATH.sub(r"\1", text)


def runtime_cause(exc: BaseException) -> str:
    """The line of a runtime's message that says what went wrong, as a client may see it (no
    paths, no status prefix, no trace of the runtime's sources). Callers log the full text."""
    lines = [line.strip() for line in str(exc).splitlines()]
    said = [line for line in lines if line and not line.startswith(_OV_TRACE)]
    text = _ORT_STATUS.sub("", said[0]).strip() if said else ""
    return without_paths(text) or type(exc).__name__
