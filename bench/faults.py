"""Fault injection against a real gateway: broken model files, a full disk, a killed pull.

    python -m bench.faults          (root is needed for the small tmpfs of the disk-full case)

Each scenario breaks one thing while other models are being served, then records what a client
was told, whether the other models kept serving, whether /api/ps still lists only models that
really are loaded, and whether anything half-written was left where it would be trusted. The
table it prints is the one in bench/README.md. Exit 1 when a scenario's verdict is "FAIL".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.fault_tools import answer, breaker, copy_model, leftovers, throttled
from bench.models import REPO
from tools.exports import export_minilm_fp32
from tools.gateway_server import GatewayServer
from tools.hf_server import LocalHub
from tools.models import minilm_entry, pull_default_model, write_registry

GOOD = ("good-a", "good-b")
VICTIM = "victim"  # the fp32 export (87 MB): its load takes long enough to break it midway
CORRUPT = "corrupt"
PULLED = "hub-minilm"
HUB_REPO = "faults/minilm-fp32"


@dataclass
class Row:
    scenario: str
    client_saw: str
    others_serving: bool
    ps_right: bool
    nothing_half_written: bool
    verdict: str = ""

    def judge(self, named: bool) -> Row:
        ok = named and self.others_serving and self.ps_right and self.nothing_half_written
        self.verdict = "ok" if ok else "FAIL"
        return self


def embed(url: str, model: str, keep_alive: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "input": ["fault injection", "second text"]}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    return httpx.post(url + "/api/embed", json=body, timeout=120)


def names(message: str, model: str) -> bool:
    """The message names the model as the gateway does: model 'NAME'."""
    return f"model '{model}'" in message


def others_serving(url: str) -> bool:
    return all(embed(url, name).status_code == 200 for name in GOOD)


def reachable(url: str) -> bool:
    """The other models still answer 200 (False, not an exception, when the server is gone)."""
    try:
        return others_serving(url)
    except httpx.HTTPError:
        return False


def ps_right(url: str, failing: str) -> bool:
    """/api/ps agrees with /admin/models and never lists the broken model."""
    ps = {m["name"].removesuffix(":latest") for m in httpx.get(url + "/api/ps").json()["models"]}
    admin = httpx.get(url + "/admin/models").json()["models"]
    loaded = {m["name"] for m in admin if m["state"] == "loaded"}
    return ps == loaded and failing not in ps


def build_registry(workdir: Path, hub_revision: str, hub_files: dict[str, str]) -> Path:
    int8, fp32 = pull_default_model(), export_minilm_fp32()
    sources = workdir / "sources"
    corrupt = copy_model(int8, sources / CORRUPT)
    (corrupt / "model.onnx").write_bytes(b"\x08\x07garbage, not a protobuf\xff" * 40_000)
    return write_registry(
        workdir / "registry.yaml",
        {
            GOOD[0]: minilm_entry(copy_model(int8, sources / GOOD[0])),
            GOOD[1]: minilm_entry(copy_model(int8, sources / GOOD[1])),
            VICTIM: minilm_entry(copy_model(fp32, sources / VICTIM)),
            CORRUPT: minilm_entry(corrupt),
            PULLED: {
                **minilm_entry(fp32),
                "source": f"hf://{HUB_REPO}@{hub_revision}",
                "files": {
                    role: {"path": name, "sha256": digest}
                    for role, (name, digest) in (
                        ("model", ("model.onnx", hub_files["model.onnx"])),
                        ("tokenizer", ("tokenizer.json", hub_files["tokenizer.json"])),
                    )
                },
            },
        },
        default_model=GOOD[0],
    )


# -- scenarios ------------------------------------------------------------------------------


def broken_while_loaded(url: str, victim_file: Path, how: str) -> Row:
    """Loaded model's file deleted or truncated: serving goes on from memory; the next load
    says what is wrong."""
    backup = victim_file.read_bytes()
    try:
        assert embed(url, VICTIM).status_code == 200
        breaker(how)(victim_file)
        still = embed(url, VICTIM, keep_alive="0")  # served from memory, then unloaded
        time.sleep(0.5)
        reload = embed(url, VICTIM)
        saw = f"loaded: {answer(still)}; next load: {answer(reload)}"
        named = reload.status_code in {404, 500, 503} and names(answer(reload), VICTIM)
        return Row(
            f"model file {how} while loaded", saw, others_serving(url), ps_right(url, VICTIM), True
        ).judge(named and still.status_code == 200)
    finally:
        victim_file.write_bytes(backup)


def broken_while_loading(url: str, victim_file: Path, how: str, delay: float) -> Row:
    backup = victim_file.read_bytes()
    try:
        embed(url, GOOD[0], keep_alive="0")  # make sure the victim is not loaded
        embed(url, VICTIM, keep_alive="0")
        time.sleep(0.5)
        result: dict[str, httpx.Response] = {}
        failed: list[httpx.HTTPError] = []

        def load() -> None:
            try:
                result["r"] = embed(url, VICTIM)
            except httpx.HTTPError as exc:  # no answer at all: recorded, never raised
                failed.append(exc)

        loader = threading.Thread(target=load)
        loader.start()
        time.sleep(delay)
        breaker(how)(victim_file)
        loader.join()
        scenario = f"model file {how} {int(delay * 1000)} ms into its load"
        if failed:
            return Row(scenario, f"no answer: {failed[0]!r}", reachable(url), False, True).judge(
                False
            )
        response = result["r"]
        saw = answer(response)
        # Either the load had read the file already (200), or the error names model and cause.
        named = response.status_code == 200 or (
            response.status_code in {404, 500, 503} and names(saw, VICTIM)
        )
        return Row(
            scenario,
            saw,
            others_serving(url),
            ps_right(url, VICTIM) or response.status_code == 200,
            True,
        ).judge(named)
    finally:
        victim_file.write_bytes(backup)


def corrupt_among_good(url: str) -> Row:
    response = embed(url, CORRUPT)
    saw = answer(response)
    named = response.status_code >= 400 and names(saw, CORRUPT) and "model.onnx" in saw
    admin = httpx.get(url + "/admin/models").json()["models"]
    recorded = any(m["name"] == CORRUPT and m.get("last_load_error") for m in admin)
    return Row(
        "corrupt ONNX among good models",
        saw,
        others_serving(url),
        ps_right(url, CORRUPT),
        True,
    ).judge(named and recorded)


def disk_full_pull(workdir: Path, registry: Path, hub: LocalHub) -> Row:
    mount = workdir / "tiny-disk"
    mount.mkdir()
    # 40 MB: room for the tokenizer and part of the 87 MB model.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], check=True)
    try:
        env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0", "GATEWAY_GRAPH_CACHE": "false"}
        with GatewayServer(registry=registry, models_dir=mount, env=env) as server:
            response = httpx.post(
                server.url + "/api/pull", json={"model": PULLED, "stream": False}, timeout=120
            )
            saw = answer(response)
            after = embed(server.url, PULLED)
            left = leftovers(mount)
            named = response.status_code == 507 and names(saw, PULLED) and "space" in saw.lower()
            return Row(
                "disk full during a pull (40 MB tmpfs)",
                f"{saw}; then embed: {answer(after)}; left on disk: {left or 'nothing'}",
                others_serving(server.url),
                ps_right(server.url, PULLED),
                not left and after.status_code == 404,
            ).judge(named)
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def pull_killed_then_retried(workdir: Path, registry: Path, hub: LocalHub) -> Row:
    models = workdir / "pull-models"
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0", "GATEWAY_GRAPH_CACHE": "false"}
    with (
        throttled(hub, 20 * 2**20),
        GatewayServer(registry=registry, models_dir=models, env=env) as server,
    ):
        assert server.process is not None
        with httpx.stream(
            "POST", server.url + "/api/pull", json={"model": PULLED}, timeout=120
        ) as stream:
            for line in stream.iter_lines():
                event = json.loads(line)
                total, done = event.get("total"), event.get("completed")
                if total and done and total > 50 * 2**20 and done > total // 3:
                    server.process.send_signal(signal.SIGKILL)
                    break
        server.process.wait()
    left_after_kill = leftovers(models)
    with GatewayServer(registry=registry, models_dir=models, env=env) as server:
        before = embed(server.url, PULLED)
        retry = httpx.post(
            server.url + "/api/pull", json={"model": PULLED, "stream": False}, timeout=300
        )
        after = embed(server.url, PULLED)
        left_after_retry = leftovers(models)
        saw = (
            f"after the kill: embed {answer(before)}, temp files {left_after_kill or 'none'}; "
            f"retry: {answer(retry)}; embed {answer(after)}; "
            f"temp files {left_after_retry or 'none'}"
        )
        return Row(
            "pull killed (SIGKILL) a third of the way, then retried",
            saw,
            others_serving(server.url),
            ps_right(server.url, "-"),
            before.status_code == 404 and not left_after_retry,
        ).judge(retry.status_code == 200 and after.status_code == 200)


def run(workdir: Path) -> list[Row]:
    fp32 = export_minilm_fp32()
    files = {name: fp32 / name for name in ("model.onnx", "tokenizer.json")}
    rows: list[Row] = []
    with LocalHub() as hub:
        revision = hub.commit(HUB_REPO, files)
        digests = {
            name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()
        }
        registry = build_registry(workdir, revision, digests)
        victim_file = workdir / "sources" / VICTIM / "model.onnx"
        env = {"GATEWAY_GRAPH_CACHE": "false", "GATEWAY_CACHE_BYTES": "0"}
        with GatewayServer(registry=registry, models_dir=workdir / "models", env=env) as server:
            try:
                for how in ("deleted", "truncated"):
                    rows.append(broken_while_loaded(server.url, victim_file, how))
                for how in ("deleted", "truncated"):
                    for delay in (0.05, 0.5, 1.5):  # a load of the fp32 model takes ~3 s here
                        rows.append(broken_while_loading(server.url, victim_file, how, delay))
                rows.append(corrupt_among_good(server.url))
            except httpx.HTTPError:
                code = server.process.poll() if server.process else None
                status = "is still running" if code is None else f"exited with {code}"
                print(
                    f"the main server stopped answering and {status} (-7 is SIGBUS, -9 SIGKILL); "
                    "its log ends:\n" + server.log()[-3000:]
                )
                raise
            main_log = server.log()
            exit_code = server.process.poll() if server.process else None
        rows.append(disk_full_pull(workdir, registry, hub))
        rows.append(pull_killed_then_retried(workdir, registry, hub))
    if exit_code is not None:  # the log lives in the temporary folder: keep its tail here
        print(f"note: the main server exited with {exit_code}:\n" + main_log[-3000:])
    elif "Traceback" in main_log:
        print("note: the main server logged a traceback:\n" + main_log[-3000:])
    return rows


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| scenario | what the client was told | others serving | /api/ps right "
        "| nothing half-written trusted | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.scenario} | {row.client_saw.replace('|', '/')} | "
            f"{'yes' if row.others_serving else 'NO'} | {'yes' if row.ps_right else 'NO'} | "
            f"{'yes' if row.nothing_half_written else 'NO'} | {row.verdict} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        rows = run(Path(tmp))
    print(table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"faults-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps([row.__dict__ for row in rows], indent=1))
    print(f"details: {path}")
    return 0 if all(row.verdict == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
