"""The device side of `make gpu-carry` (bench/gpu_carry.py): every call runs
`python3 -m bench.gpu_carry_step [-- gpu-check options]` with one part carried. It checks the
parts that have landed; once all are here it installs the wheels into their own folder, makes
sure what the check imports imports, and runs `bench.gpu_check` with that folder first on
PYTHONPATH.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Sequence
from pathlib import Path

from bench.gpu_carry import BUNDLED_MODEL, CARRY, NEEDED_MODULES, REPO, SITE, log, sha256


def read_manifest(carry: Path) -> dict | None:
    """The manifest beside any part that has landed (every part carries the whole set's)."""
    for path in sorted(carry.glob("p*/manifest.json")):
        return json.loads(path.read_text())
    return None


def landed(carry: Path, manifest: dict) -> tuple[list[str], list[str]]:
    """(parts here and intact, parts missing); a part whose bytes do not match is an error,
    not a missing part: carrying it again would not help if the source is wrong."""
    here, missing = [], []
    for part in manifest["parts"]:
        path = carry / part["name"] / "part.bin"
        if not path.is_file():
            missing.append(part["name"])
            continue
        if sha256(path.read_bytes()) != part["sha256"]:
            raise SystemExit(f"{path}: sha256 differs from the manifest; prepare the parts again")
        here.append(part["name"])
    return here, missing


def unpack(carry: Path, manifest: dict, into: Path) -> list[Path]:
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


def check_environment(site: Path) -> dict[str, str]:
    """PYTHONPATH for the check: the carried site first, then this repository."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


def missing_modules(env: dict[str, str]) -> list[str]:
    """The NEEDED_MODULES that do not import under `env` (in a child, as the check will)."""
    probe = (
        "import importlib, sys\n"
        "bad = []\n"
        f"for name in {list(NEEDED_MODULES)!r}:\n"
        "    try: importlib.import_module(name)\n"
        "    except Exception as exc: bad.append(f'{name} ({type(exc).__name__}: {exc})')\n"
        "print('\\n'.join(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=REPO, capture_output=True, text=True
    )
    return [line for line in done.stdout.splitlines() if line] or (
        [f"the import probe failed: {done.stderr[-500:]}"] if done.returncode else []
    )


def step(carry: Path, site: Path, check_args: Sequence[str]) -> int:
    """Report the parts; when all are here: install, probe the imports, run the check."""
    started = time.time()
    manifest = read_manifest(carry)
    if manifest is None:
        log(f"no part under {carry}: carry .gpu-carry/p00 (see `make gpu-carry`)")
        return 2
    here, missing = landed(carry, manifest)
    log(
        f"parts here: {len(here)}/{len(manifest['parts'])}"
        + (f"; still to carry: {' '.join(missing)}" if missing else "")
    )
    if missing:
        return 0
    with tempfile.TemporaryDirectory(prefix="gpu-carry-") as scratch:
        wheels = unpack(carry, manifest, Path(scratch))
        install(wheels, site)
        model = Path(scratch) / BUNDLED_MODEL
        if model.is_dir() and not (REPO / BUNDLED_MODEL).exists():
            shutil.copytree(model, REPO / BUNDLED_MODEL)
    log(f"installed {len(wheels)} wheels into {site} in {time.time() - started:.0f} s")
    env = check_environment(site)
    bad = missing_modules(env)
    if bad:
        log("cannot start the check, these do not import: " + "; ".join(bad))
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
    return step(args.carry, args.site, args.check_args)


if __name__ == "__main__":
    sys.exit(main())
