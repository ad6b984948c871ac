"""`make gpu-carry` (bench/gpu_carry.py, gpu_carry_step.py): what is carried, and how parts
land, join and install, without a GPU, a network or a device machine."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bench import gpu_carry, gpu_carry_step


def test_the_gpu_onnxruntime_replaces_the_cpu_one() -> None:
    wanted = gpu_carry.wanted(
        ["litestar>=2.23,<3", "onnxruntime>=1.18", "uvloop>=0.19; sys_platform != 'win32'"],
        "onnxruntime-gpu==1.31.1",
    )
    assert wanted == [
        "litestar>=2.23,<3",
        "uvloop>=0.19; sys_platform != 'win32'",
        "onnxruntime-gpu==1.31.1",
    ]


def test_what_the_image_has_stays_behind_whatever_the_spelling() -> None:
    resolved = [
        ("PyYAML", "6.0.2"),
        ("typing_extensions", "4.15.0"),
        ("litestar", "2.25.0"),
        ("onnxruntime-gpu", "1.31.1"),
        ("numpy", "2.3.0"),
    ]
    assert gpu_carry.to_carry(resolved, "onnxruntime-gpu==1.31.1") == [
        ("litestar", "2.25.0"),
        ("onnxruntime-gpu", "1.31.1"),
    ]
    # the onnxruntime asked for is carried even where the image has one of that name
    assert ("onnxruntime", "1.32.0") in gpu_carry.to_carry(
        [("onnxruntime", "1.32.0")], "onnxruntime==1.32.0"
    )


def tiny_wheel(folder: Path, name: str = "carrytiny", version: str = "0.1") -> Path:
    """A valid pure-Python wheel, deflated as pip and build tools write them."""
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n" + b"# padding\n" * 200,
        f"{name}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        ).encode(),
        f"{name}-{version}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [
        f"{path},sha256="
        f"{base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
        f"{len(data)}"
        for path, data in files.items()
    ]
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as out:
        for path, data in files.items():
            out.writestr(path, data)
    return wheel


def carried(tmp_path: Path, part_bytes: int = 700) -> tuple[Path, dict, Path]:
    wheel = tiny_wheel(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.onnx").write_bytes(bytes(range(256)) * 9)
    stream = gpu_carry.pack([wheel], model)
    carry = tmp_path / "carry"
    count = gpu_carry.write_parts(stream, carry, part_bytes, {"python": "3.12"})
    assert count == len(list(carry.glob("p*/part.bin"))) > 1
    manifest = gpu_carry_step.read_manifest(carry)
    assert manifest is not None
    return carry, manifest, wheel


def test_a_stored_wheel_holds_the_same_members_uncompressed(tmp_path: Path) -> None:
    wheel = tiny_wheel(tmp_path)
    out = tmp_path / "stored.whl"
    out.write_bytes(gpu_carry.stored(wheel))
    with zipfile.ZipFile(wheel) as before, zipfile.ZipFile(out) as after:
        assert [i.filename for i in after.infolist()] == [i.filename for i in before.infolist()]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in after.infolist())
        assert all(after.read(n) == before.read(n) for n in before.namelist())


def test_parts_join_back_into_the_wheels_and_the_model(tmp_path: Path) -> None:
    carry, manifest, wheel = carried(tmp_path)
    here, missing = gpu_carry_step.landed(carry, manifest)
    assert missing == [] and len(here) == len(manifest["parts"])
    wheels = gpu_carry_step.unpack(carry, manifest, tmp_path / "out")
    assert [w.name for w in wheels] == [wheel.name]
    with zipfile.ZipFile(wheel) as before, zipfile.ZipFile(wheels[0]) as after:
        assert all(after.read(n) == before.read(n) for n in before.namelist())
    model = tmp_path / "out" / gpu_carry.BUNDLED_MODEL / "model.onnx"
    assert model.read_bytes() == bytes(range(256)) * 9


def test_a_part_not_yet_carried_is_named_and_nothing_is_installed(tmp_path: Path) -> None:
    carry, manifest, _ = carried(tmp_path)
    (carry / "p01" / "part.bin").unlink()
    assert gpu_carry_step.landed(carry, manifest)[1] == ["p01"]
    site = tmp_path / "site"
    assert gpu_carry_step.step(carry, site, []) == 0
    assert not site.exists()


def test_a_damaged_part_stops_the_step(tmp_path: Path) -> None:
    carry, manifest, _ = carried(tmp_path)
    part = carry / "p00" / "part.bin"
    part.write_bytes(b"x" + part.read_bytes()[1:])
    with pytest.raises(SystemExit, match="sha256"):
        gpu_carry_step.landed(carry, manifest)


def test_no_part_at_all_is_an_error(tmp_path: Path) -> None:
    assert gpu_carry_step.step(tmp_path / "nothing", tmp_path / "site", []) == 2


def test_the_joined_wheels_install_with_pip_offline(tmp_path: Path) -> None:
    carry, manifest, _ = carried(tmp_path)
    wheels = gpu_carry_step.unpack(carry, manifest, tmp_path / "out")
    site = tmp_path / "site"
    gpu_carry_step.install(wheels, site)
    done = subprocess.run(
        [sys.executable, "-c", "import carrytiny; print(carrytiny.VALUE)"],
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == "42", done.stderr


def test_the_plan_carries_each_part_once(tmp_path: Path) -> None:
    text = gpu_carry.plan(gpu_carry.CARRY, 3, "--output $OUT/gpu-check.json")
    calls = [line for line in text.splitlines() if line.strip().startswith("run(")]
    assert [json.loads(c.split("carry=")[1].split("]")[0] + "]") for c in calls] == [
        [".gpu-carry/p00"],
        [".gpu-carry/p01"],
        [".gpu-carry/p02"],
    ]
    assert all(gpu_carry.STEP in c and "--output $OUT/gpu-check.json" in c for c in calls)


def test_the_import_probe_names_what_does_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_carry_step, "NEEDED_MODULES", ("json", "no_such_module_here"))
    missing = gpu_carry_step.missing_modules(gpu_carry_step.check_environment(Path("/nowhere")))
    assert len(missing) == 1 and missing[0].startswith("no_such_module_here (ModuleNotFoundError")
