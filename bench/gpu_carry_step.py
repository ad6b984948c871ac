"""The device side of `make gpu-carry` (bench/gpu_carry.py): every call runs
`python3 -m bench.gpu_carry_step [-- gpu-check options]` with one part carried. It checks the
parts that have landed; once all are here it installs the wheels into their own folder, makes
sure what the check imports imports (and that `onnxruntime` is the carried one), and runs
`bench.gpu_check` with that folder first on PYTHONPATH.

Exit status: 3 while parts are still to carry, 2 when the check cannot start, else the
check's own.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.gpu_carry import BUNDLED_MODEL, CARRY, NEEDED_MODULES, REPO, SITE, log, sha256

WAITING = 3
# Written by the first step a machine runs: a later call that finds it new ran on a fresh
# machine, which has lost the parts carried before.
FIRST_SEEN = Path("/tmp/gpu-carry-first-step")
CUDA_PROVIDER = "CUDAExecutionProvider"


def manifests(carry: Path) -> dict[str, dict[str, Any]]:
    """Each landed part's manifest, by part folder."""
    return {
        path.parent.name: json.loads(path.read_text())
        for path in sorted(carry.glob("p*/manifest.json"))
    }


def read_manifest(carry: Path) -> dict[str, Any] | None:
    """The newest set's manifest among the landed parts (every part carries its set's)."""
    found = manifests(carry).values()
    return max(found, key=lambda m: str(m.get("created", ""))) if found else None


def landed(carry: Path, manifest: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(parts here and intact, parts missing, parts left by an older set). A part of this set
    whose bytes do not match is an error: it was damaged on the way."""
    sets = manifests(carry)  # a part belongs to this set when its manifest is this one
    here, missing, stale = [], [], []
    for part in manifest["parts"]:
        name = part["name"]
        path = carry / name / "part.bin"
        if not path.is_file():
            missing.append(name)
        elif sets.get(name) != manifest:
            stale.append(name)
        elif sha256(path.read_bytes()) != part["sha256"]:
            raise SystemExit(f"{path}: damaged on the way (sha256 differs); carry {name} again")
        else:
            here.append(name)
    return here, missing, stale


def unpack(carry: Path, manifest: Mapping[str, Any], into: Path) -> list[Path]:
    """Join the parts, check the stream, unpack it under `into`; returns the wheels."""
    stream = b"".join((carry / p["name"] / "part.bin").read_bytes() for p in manifest["parts"])
    if sha256(stream) != manifest["stream_sha256"]:
        raise SystemExit("the joined parts do not match the manifest's sha256")
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(stream)), mode="r") as tar:
        tar.extractall(into, filter="data")
    return sorted((into / "wheels").glob("*.whl"))


def install(wheels: Sequence[Path], site: Path) -> None:
    """Into `site` alone, from these files alone: the image's own packages stay as they are."""
    if site.exists():
        shutil.rmtree(site)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
         "--no-compile", "--no-cache-dir", "--disable-pip-version-check", "--target", str(site),
         *map(str, wheels)],
        check=True,
    )  # fmt: skip


def nvidia_library_dirs() -> list[str]:
    """The `lib` folders of this interpreter's nvidia-* wheels (the image's CUDA 13 and cuDNN).
    onnxruntime.preload_dlls() looks for them beside onnxruntime's own folder, which here is
    the carried site, then by bare name: on the loader's path, these folders find them. A
    gateway that never imports torch (which would load them itself) needs exactly that."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    folders = (Path(p) for p in spec.submodule_search_locations)
    return sorted(str(lib) for folder in folders for lib in folder.glob("*/lib") if lib.is_dir())


def prepend(value: str | None, *first: str) -> str:
    return os.pathsep.join([*first, *([value] if value else [])])


def check_environment(site: Path, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The check's environment: the carried site, then this repository, before any PYTHONPATH
    the image sets; the image's CUDA libraries before any LD_LIBRARY_PATH it sets."""
    return {
        **environ,
        "PYTHONPATH": prepend(environ.get("PYTHONPATH"), str(site), str(REPO)),
        "LD_LIBRARY_PATH": prepend(environ.get("LD_LIBRARY_PATH"), *nvidia_library_dirs()),
    }


PROBE = """
import importlib, json, sys
bad = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        bad.append(f"{name} ({type(exc).__name__}: {exc})")
facts = {"missing": bad}
try:
    import onnxruntime
    facts.update(file=onnxruntime.__file__, version=onnxruntime.__version__,
                 providers=onnxruntime.get_available_providers())
except Exception as exc:
    pass
print(json.dumps(facts))
"""


def probe(env: Mapping[str, str]) -> dict[str, Any]:
    """In a child with the check's environment: which NEEDED_MODULES fail to import, and
    which onnxruntime imports (its file, version and providers)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *NEEDED_MODULES],
        env=dict(env), cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        return {"missing": [f"the import probe failed: {done.stderr[-500:]}"]}
    facts: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return facts


def probe_problems(facts: Mapping[str, Any], site: Path, gpu: bool) -> list[str]:
    """What stops the check: a module that does not import, an onnxruntime that is not the
    carried one (the image's CPU build would shadow nothing and run everything on the CPU),
    and on a GPU run an onnxruntime without the CUDA provider."""
    problems = [f"does not import: {line}" for line in facts.get("missing", [])]
    where = facts.get("file")
    if where and not Path(where).is_relative_to(site):
        problems.append(f"onnxruntime {facts.get('version')} imports from {where}, not {site}")
    if gpu and where and CUDA_PROVIDER not in facts.get("providers", []):
        problems.append(f"onnxruntime {facts.get('version')} lists no {CUDA_PROVIDER}")
    return problems


def machine_age(now: float) -> float:
    """Seconds since this machine's first step (0 for the first)."""
    try:
        return now - float(FIRST_SEEN.read_text())
    except (OSError, ValueError):
        FIRST_SEEN.write_text(repr(now))
        return 0.0


def step(carry: Path, site: Path, check_args: Sequence[str]) -> int:
    """Report the parts; when all are here: install, probe the imports, run the check."""
    started = time.time()
    log(f"this machine's first step ran {machine_age(started):.0f} s ago")
    manifest = read_manifest(carry)
    if manifest is None:
        log(f"no part under {carry}: carry .gpu-carry/p00 (see `make gpu-carry`)")
        return 2
    here, missing, stale = landed(carry, manifest)
    log(f"parts here: {len(here)}/{len(manifest['parts'])} of the set made {manifest['created']}")
    if stale:
        log(f"left by an older `make gpu-carry`, carry again: {' '.join(stale)}")
    if missing or stale:
        log(f"WAITING: still to carry: {' '.join(sorted(missing + stale))}")
        return WAITING
    with tempfile.TemporaryDirectory(prefix="gpu-carry-") as scratch:
        wheels = unpack(carry, manifest, Path(scratch))
        install(wheels, site)
        model = Path(scratch) / BUNDLED_MODEL
        if model.is_dir() and not (REPO / BUNDLED_MODEL).exists():
            shutil.copytree(model, REPO / BUNDLED_MODEL)
    log(f"installed {len(wheels)} wheels into {site} in {time.time() - started:.0f} s")
    env = check_environment(site)
    facts = probe(env)
    log(f"onnxruntime: {facts.get('version')} from {facts.get('file')}, {facts.get('providers')}")
    problems = probe_problems(facts, site, gpu="--cpu-dry-run" not in check_args)
    if problems:
        log("cannot start the check: " + "; ".join(problems))
        return 2
    env.setdefault("GPU_CHECK_STARTED_AT", repr(started))
    command = [sys.executable, "-m", "bench.gpu_check", "--installed", *check_args]
    return subprocess.run(command, env=env, cwd=REPO).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--carry", type=Path, default=CARRY)
    parser.add_argument("--site", type=Path, default=SITE)
    parser.add_argument("check_args", nargs="*", help="after --: options for bench.gpu_check")
    args = parser.parse_args(argv)
    return step(args.carry.resolve(), args.site, args.check_args)


if __name__ == "__main__":
    sys.exit(main())
