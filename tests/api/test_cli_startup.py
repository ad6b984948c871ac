"""Start-up problems end in one `gateway: ...` line and exit code 2, never a traceback: a bad
source in the registry, a registry that cannot be read, a preload model that cannot load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.backends.base import INT8_REFUSED
from tests.api.test_cli import run_gateway
from tools.gateway_server import free_port


def text_entry(source: str) -> dict[str, Any]:
    return {
        "kind": "text",
        "source": source,
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json"},
        "dim": 384,
    }


def write_registry(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def serve(tmp_path: Path, registry: Path, *args: str, **env: str) -> Any:
    """`gateway serve` on a free port with `registry`, a models folder of its own and `args`."""
    models = str(tmp_path / "models")
    port = str(free_port())
    return run_gateway("serve", "--port", port, "--registry", str(registry), "--models-dir", models,
                       *args, **env)  # fmt: skip


def assert_one_line(result: Any, message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == message


@pytest.mark.parametrize("command", ["ls", "serve"])
def test_a_malformed_source_refuses_the_registry(tmp_path: Path, command: str) -> None:
    port = ("--port", str(free_port())) if command == "serve" else ()
    path = write_registry(
        tmp_path, {"models": {"good": text_entry("weights"), "broken": text_entry("pypi://foo")}}
    )
    result = run_gateway(
        command, *port, "--registry", str(path), "--models-dir", str(tmp_path / "m")
    )
    assert_one_line(
        result,
        f"gateway: {path}: model 'broken': source: pypi://foo: "
        "a PyPI source must pin a version (pypi://name==1.2.3)",
    )


def test_a_preload_model_that_was_never_pulled_stops_start_up(tmp_path: Path) -> None:
    document = {"preload": ["gone"], "models": {"gone": text_entry("hf://acme/gone@main")}}
    path = write_registry(tmp_path, document)
    result = serve(tmp_path, path, GATEWAY_AUTO_PULL="false")
    assert_one_line(
        result,
        "gateway: preload: model 'gone' not found, try pulling it first "
        "(gateway pull gone, or POST /api/pull)",
    )


def test_a_preload_model_that_fails_to_load_stops_start_up(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "model.onnx").write_bytes(b"not an onnx graph")
    (weights / "tokenizer.json").write_text("{}")
    path = write_registry(tmp_path, {"preload": ["bad"], "models": {"bad": text_entry("weights")}})
    result = serve(tmp_path, path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("gateway: preload: model 'bad' could not be loaded: "), last


def test_a_registry_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    assert_one_line(
        run_gateway("ls", "--registry", str(folder)),
        f"gateway: {folder}: cannot read it (Is a directory)",
    )
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("models: {caf\xe9: {}}\n".encode("latin-1"))
    assert_one_line(
        run_gateway("ls", "--registry", str(latin)),
        f"gateway: {latin}: not UTF-8 text (byte 12)",
    )


def test_bad_cli_inputs_are_one_line(tmp_path: Path) -> None:
    assert_one_line(
        run_gateway("ls", "--url", "http://[::1"),
        "gateway: http://[::1: not a valid URL (Invalid IPv6 URL)",
    )
    texts = tmp_path / "bad.txt"
    texts.write_bytes(b"caf\xe9\n")
    result = run_gateway("embed", str(texts), "-m", "all-minilm", "-o", str(tmp_path / "out.npy"))
    assert_one_line(result, f"gateway: {texts}: not UTF-8 text (byte 3: invalid continuation byte)")


@pytest.mark.parametrize(
    ("args", "env", "origin"),
    [((), {"GATEWAY_HOST": "not-a-host.invalid"}, "GATEWAY_HOST"),
     (("--host", "not-a-host.invalid"), {}, "--host")],
)  # fmt: skip
def test_a_host_that_does_not_resolve_stops_start_up_by_name(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], origin: str
) -> None:
    # It used to start the app, then exit 3 from uvicorn with "Name or service not known".
    path = write_registry(tmp_path, {"models": {}})
    port = str(free_port())
    result = run_gateway("serve", *args, "--port", port, "--registry", str(path), **env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"gateway: {origin}: cannot resolve 'not-a-host.invalid' ("), last


@pytest.mark.parametrize(
    ("args", "env", "origin"),
    [((), {"GATEWAY_PRECISION": "int8"}, "GATEWAY_PRECISION"),
     (("--precision", "INT8"), {}, "--precision")],
)  # fmt: skip
def test_int8_precision_stops_start_up_with_the_reason(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], origin: str
) -> None:
    # It used to start, then answer every model load with a 500 (placement refuses int8).
    path = write_registry(tmp_path, {"models": {"m": text_entry("weights")}})
    result = serve(tmp_path, path, *args, **env)
    assert_one_line(result, f"gateway: {origin}: {INT8_REFUSED}")


def test_a_registry_entry_with_int8_precision_is_refused(tmp_path: Path) -> None:
    entry = {**text_entry("weights"), "precision": "int8"}
    path = write_registry(tmp_path, {"models": {"q": entry}})
    assert_one_line(
        run_gateway("ls", "--registry", str(path)),
        f"gateway: {path}: model 'q': precision: {INT8_REFUSED}",
    )
