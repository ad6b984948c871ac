"""`make gpu-carry` (bench/gpu_carry.py, gpu_carry_step.py): what is carried, and how parts
land, join and install, without a GPU, a network or a device machine."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
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


def item(name: str, version: str, *requires: str) -> dict:
    """One `install` item of pip's report, as much of it as the walk reads."""
    return {"metadata": {"name": name, "version": version, "requires_dist": list(requires)}}


REPORT = [
    item("litestar", "2.25.0", "polyfactory>=2.6", "typer", "PyYAML", "uvloop; extra == 'fast'"),
    item("polyfactory", "3.5.0", "Faker>=5", "old-backport; python_version < '3.12'"),
    item("Faker", "40.0"),
    item("typer", "0.29.0", "pydantic>=2"),  # the image has typer: its new needs stay behind
    item("pydantic", "2.14.4", "pydantic_core==2.50.5"),
    item("pydantic_core", "2.50.5"),
    item("PyYAML", "6.0.2"),
    item("uvloop", "0.21.0"),
    item("old-backport", "1.0"),
    item("onnxruntime-gpu", "1.31.1", "numpy>=1.21", "flatbuffers"),
    item("numpy", "2.3.0"),
    item("flatbuffers", "25.0"),
]


def test_the_walk_carries_what_the_image_lacks_and_stops_at_what_it_has() -> None:
    roots = ["litestar>=2.23,<3", "onnxruntime-gpu==1.31.1"]
    assert gpu_carry.to_carry(REPORT, roots, "onnxruntime-gpu==1.31.1", "3.12") == [
        ("Faker", "40.0"),
        ("litestar", "2.25.0"),
        ("onnxruntime-gpu", "1.31.1"),
        ("polyfactory", "3.5.0"),
    ]


def test_markers_are_read_for_the_device_interpreter_and_the_extras_asked_for() -> None:
    on_311 = gpu_carry.to_carry(REPORT, ["polyfactory"], "onnxruntime-gpu", "3.11")
    assert ("old-backport", "1.0") in on_311
    with_extra = gpu_carry.to_carry(REPORT, ["litestar[fast]"], "onnxruntime-gpu", "3.12")
    assert ("uvloop", "0.21.0") not in with_extra  # the image has uvloop
    assert gpu_carry.to_carry(
        [item("onnxruntime", "1.32.0")], ["onnxruntime==1.32.0"], "onnxruntime==1.32.0", "3.12"
    ) == [("onnxruntime", "1.32.0")]  # the onnxruntime asked for, though the image has one


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


def carried(
    tmp_path: Path, part_bytes: int = 700, created: str = "2026-12-06T16:00:00+0000"
) -> tuple[Path, dict, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    wheel = tiny_wheel(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.onnx").write_bytes(bytes(range(256)) * 9)
    (model / ".fp16").mkdir()  # a cache a run wrote beside the model: not carried
    (model / ".fp16" / "model-fp16.onnx").write_bytes(b"cache")
    stream = gpu_carry.pack([wheel], model)
    carry = tmp_path / "carry"
    count = gpu_carry.write_parts(stream, carry, part_bytes, {"created": created})
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
    here, missing, stale = gpu_carry_step.landed(carry, manifest)
    assert missing == stale == [] and len(here) == len(manifest["parts"])
    wheels = gpu_carry_step.unpack(carry, manifest, tmp_path / "out")
    assert [w.name for w in wheels] == [wheel.name]
    with zipfile.ZipFile(wheel) as before, zipfile.ZipFile(wheels[0]) as after:
        assert all(after.read(n) == before.read(n) for n in before.namelist())
    model = tmp_path / "out" / gpu_carry.BUNDLED_MODEL / "model.onnx"
    assert model.read_bytes() == bytes(range(256)) * 9
    assert not (model.parent / ".fp16").exists()


@pytest.fixture(autouse=True)
def first_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_carry_step, "FIRST_SEEN", tmp_path / "first-step")


def test_a_part_not_yet_carried_is_named_and_nothing_is_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    carry, manifest, _ = carried(tmp_path)
    (carry / "p01" / "part.bin").unlink()
    assert gpu_carry_step.landed(carry, manifest)[1] == ["p01"]
    site = tmp_path / "site"
    assert gpu_carry_step.step(carry, site, []) == gpu_carry_step.WAITING
    assert not site.exists()
    assert "WAITING: still to carry: p01" in capsys.readouterr().err


def test_parts_of_an_older_set_are_named_to_carry_again(tmp_path: Path) -> None:
    old, _, _ = carried(tmp_path / "old", 600, created="2026-12-06T15:00:00+0000")
    carry, manifest, _ = carried(tmp_path / "new")
    shutil.rmtree(carry / "p00")
    shutil.copytree(old / "p00", carry / "p00")  # an earlier set's p00, still on the machine
    assert gpu_carry_step.read_manifest(carry) == manifest  # the newest set's
    here, missing, stale = gpu_carry_step.landed(carry, manifest)
    assert stale == ["p00"] and missing == [] and "p01" in here


def test_a_machine_knows_how_long_ago_its_first_step_ran(tmp_path: Path) -> None:
    assert gpu_carry_step.machine_age(1000.0) == 0.0
    assert gpu_carry_step.machine_age(1042.5) == 42.5


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


def test_the_plan_carries_each_part_once() -> None:
    text = gpu_carry.plan(gpu_carry.CARRY, 3, 60 * 2**20, "--output $OUT/gpu-check.json")
    calls = [line for line in text.splitlines() if line.strip().startswith("run(")]
    assert [json.loads(c.split("carry=")[1].split("]")[0] + "]") for c in calls] == [
        [".gpu-carry/p00"],
        [".gpu-carry/p01"],
        [".gpu-carry/p02"],
    ]
    assert all(gpu_carry.STEP in c and "--output $OUT/gpu-check.json" in c for c in calls)
    elsewhere = gpu_carry.plan(gpu_carry.REPO / ".cache" / "parts", 1, 2**20, "")
    assert "--carry .cache/parts --" in elsewhere  # the step must look where the parts land


def test_new_parts_replace_an_older_set_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "p07").mkdir()
    (tmp_path / "notes.txt").write_text("kept")
    assert gpu_carry.write_parts(b"x" * 10, tmp_path, 4, {}) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "p00", "p01", "p02"]


def test_the_import_probe_names_what_does_not_import_and_which_onnxruntime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu_carry_step, "NEEDED_MODULES", ("json", "no_such_module_here"))
    facts = gpu_carry_step.probe(gpu_carry_step.check_environment(tmp_path))
    assert len(facts["missing"]) == 1
    assert facts["missing"][0].startswith("no_such_module_here (ModuleNotFoundError")
    assert facts["file"].endswith("__init__.py") and facts["providers"]
    # this venv's onnxruntime is not under the carried site: the check would not start
    problems = gpu_carry_step.probe_problems(facts, tmp_path, gpu=False)
    assert any(f"not {tmp_path}" in problem for problem in problems)


def test_a_gpu_run_needs_the_carried_onnxruntime_with_the_cuda_provider(tmp_path: Path) -> None:
    carried_ort = {"file": str(tmp_path / "onnxruntime" / "__init__.py"), "version": "1.31.1"}
    cpu_only = {**carried_ort, "providers": ["CPUExecutionProvider"]}
    assert gpu_carry_step.probe_problems(cpu_only, tmp_path, gpu=False) == []
    assert gpu_carry_step.probe_problems(cpu_only, tmp_path, gpu=True) == [
        "onnxruntime 1.31.1 lists no CUDAExecutionProvider"
    ]
    with_cuda = {**carried_ort, "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
    assert gpu_carry_step.probe_problems(with_cuda, tmp_path, gpu=True) == []


def test_the_images_cuda_libraries_come_first_on_the_loaders_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder in ("cu13/lib", "cudnn/lib", "cu13/include"):
        (tmp_path / "nvidia" / folder).mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "nvidia", raising=False)
    site = tmp_path / "site"
    env = gpu_carry_step.check_environment(
        site, {"PYTHONPATH": "/image/py", "LD_LIBRARY_PATH": "/image/lib"}
    )
    libraries = env["LD_LIBRARY_PATH"].split(os.pathsep)
    assert libraries[:2] == [str(tmp_path / "nvidia/cu13/lib"), str(tmp_path / "nvidia/cudnn/lib")]
    assert libraries[-1] == "/image/lib"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(site), str(gpu_carry.REPO), "/image/py"]


def test_parts_outside_the_repository_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as refused:
        gpu_carry.main(["--out", str(tmp_path / "parts")])
    assert refused.value.code == 2 and not (tmp_path / "parts").exists()
