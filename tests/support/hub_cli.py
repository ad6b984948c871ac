"""The environment of a `gateway` process that pulls from a local Hugging Face stand-in."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tools.hf_server import LocalHub


def hub_cli_env(root: Path, hub: LocalHub) -> dict[str, str]:
    """This process's environment without HF_* or GATEWAY_* settings, then `root`'s registry
    and models folder, a private HF cache, and the hub as HF_ENDPOINT."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GATEWAY_"))}
    env.update(
        GATEWAY_REGISTRY=str(root / "registry.yaml"),
        GATEWAY_MODELS_DIR=str(root / "models"),
        HF_HOME=str(root / "hf-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_ENDPOINT=hub.endpoint,
    )
    return env


def hub_model_entry(hub: LocalHub, repo: str, model_bytes: bytes) -> dict[str, object]:
    """Commit `model_bytes` as a model's graph (and an empty tokenizer) to `repo` on the hub,
    and return a registry entry that pulls that commit, checksum pinned."""
    commit = hub.commit(repo, {"onnx/model.onnx": model_bytes, "tokenizer.json": b"{}"})
    return {
        "kind": "text",
        "source": f"hf://{repo}@{commit}",
        "files": {
            "model": {"path": "onnx/model.onnx", "sha256": hashlib.sha256(model_bytes).hexdigest()},
            "tokenizer": "tokenizer.json",
        },
        "dim": 4,
    }
