"""The `gateway` command as users run it: bad settings and registries are refused before binding.

Each case runs `python -m gateway` in a subprocess and checks its exit status and message.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.settings import Settings, describe_settings
from tools.paths import REPO


def run_gateway(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=REPO,
        env={**clean, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_help_lists_every_setting() -> None:
    result = run_gateway("serve", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    rows = describe_settings()
    assert len(rows) == len(dataclasses.fields(Settings))
    for flag, env, default, _ in rows:
        assert f"{flag} VALUE" in text
        assert f"[env {env}; default {default}]" in text


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("list",), {"GATEWAY_PORT": "eighty"}, "gateway: GATEWAY_PORT: expected a whole number"),
        (
            ("serve", "--keep-alive", "5x"),
            {},
            'gateway: --keep-alive: time: unknown unit "x" in duration "5x"',
        ),
        (("serve",), {"GATEWAY_AUTO_PULL": "perhaps"}, "gateway: GATEWAY_AUTO_PULL: expected"),
    ],
)
def test_cli_reports_bad_settings(args: tuple[str, ...], env: dict[str, str], message: str) -> None:
    result = run_gateway(*args, **env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_broken_registry_exits_before_binding(tmp_path: Path) -> None:
    entry = {
        "kind": "text",
        "source": "weights",
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json"},
        "dim": 384,
        "pooling": "max",
    }
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"models": {"broken": entry}}))
    # Hold the port: if the server got as far as binding, it would fail with EADDRINUSE instead.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway",
                "serve",
                "--port",
                str(port),
                "--registry",
                str(path),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"gateway: {path}: model 'broken': Invalid enum value 'max' - at `$.pooling`"
    )
