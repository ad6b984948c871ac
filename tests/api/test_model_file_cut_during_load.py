"""A model file cut in half while the server loads it: the load fails (or had already read the
file), the error names the model, and the server lives on. Reading the file through a memory
mapping turned the cut into SIGBUS, which killed the whole server with nothing in its log."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx

from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, write_registry

# Into a load of the 87 MB fp32 graph (~0.3-0.4 s here): before, during and after the file scans.
DELAYS = (0.0, 0.02, 0.05, 0.1, 0.2)


def test_a_model_file_cut_during_its_load_never_kills_the_server(
    minilm_fp32_dir: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "victim"
    model_dir.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copy(minilm_fp32_dir / name, model_dir / name)
    graph = model_dir / "model.onnx"
    whole = graph.read_bytes()
    registry = write_registry(
        tmp_path / "registry.yaml", {"victim": minilm_entry(model_dir)}, default_model="victim"
    )
    env = {"GATEWAY_GRAPH_CACHE": "false", "GATEWAY_CACHE_BYTES": "0"}
    with GatewayServer(registry=registry, env=env) as server, server.client() as client:
        for delay in DELAYS:
            graph.write_bytes(whole)
            unload = {"model": "victim", "input": "x", "keep_alive": 0}
            assert client.post("/api/embed", json=unload).status_code == 200
            answers: list[httpx.Response | Exception] = []

            loader = threading.Thread(target=_load, args=(client, answers))
            loader.start()
            time.sleep(delay)
            with graph.open("r+b") as handle:
                handle.truncate(len(whole) // 2)
            loader.join(timeout=120)
            assert server.process is not None
            assert server.process.poll() is None, f"the server died ({delay} s into the load)"
            (answer,) = answers
            assert isinstance(answer, httpx.Response), f"no answer at {delay} s: {answer!r}"
            if answer.status_code != 200:  # the load had not read the file yet
                assert answer.status_code == 500, answer.text
                assert "victim" in answer.json()["error"], answer.text
        graph.write_bytes(whole)
        client.post("/api/embed", json={"model": "victim", "input": "x", "keep_alive": 0})
        healthy = client.post("/api/embed", json={"model": "victim", "input": "after the cuts"})
        assert healthy.status_code == 200, healthy.text


def _load(client: httpx.Client, answers: list[httpx.Response | Exception]) -> None:
    try:
        answers.append(client.post("/api/embed", json={"model": "victim", "input": "x"}))
    except httpx.HTTPError as exc:
        answers.append(exc)
