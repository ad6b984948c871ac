"""What `gateway embed` checks before and while it runs: the model can embed the input and is
here, a resumed job still has the same input, and an engine's error names the user's record."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from gateway.bulk.job import BatchFailed, JobPlan, run_job
from gateway.bulk.model_check import check_job_model, check_remote_images
from gateway.bulk.parts import JobMismatch, PartStore, job_identity
from gateway.bulk.records import Record, Records, read_records
from gateway.errors import InputTooLong, InvalidRequest, ModelNotFound, UnsupportedInput
from gateway.settings import Settings
from tools.models import minilm_entry, write_registry
from tools.paths import REPO


def settings_with(registry: Path, models_dir: Path) -> Settings:
    return Settings.load(
        environ={"GATEWAY_REGISTRY": str(registry), "GATEWAY_MODELS_DIR": str(models_dir)}
    )


def test_the_model_must_embed_what_the_job_reads(default_model_dir: Path, tmp_path: Path) -> None:
    here = write_registry(tmp_path / "registry.yaml", {"minilm": minilm_entry(default_model_dir)})
    settings = settings_with(here, tmp_path / "models")
    assert check_job_model(settings, "minilm") == "minilm"
    with pytest.raises(UnsupportedInput, match="a folder of images needs an image model"):
        check_job_model(settings, "minilm", images=True)
    with pytest.raises(InvalidRequest, match=r"dimensions must be an integer from 1 to 384"):
        check_job_model(settings, "minilm", dimensions=1000)
    with pytest.raises(ModelNotFound, match="no-such-model"):
        check_job_model(settings, "no-such-model")


def test_tasks_and_missing_files_fail_before_any_engine(tmp_path: Path) -> None:
    settings = settings_with(REPO / "registry.yaml", tmp_path / "empty")
    with pytest.raises(InvalidRequest, match="has no task 'querry'"):
        check_job_model(settings, "nomic-embed-text", task="querry")
    with pytest.raises(ModelNotFound, match="try pulling it first"):
        check_job_model(settings, "nomic-embed-text", task="query")
    with pytest.raises(ModelNotFound, match="try pulling it first"):
        check_job_model(settings, "nomic-embed-vision", images=True)
    with pytest.raises(UnsupportedInput, match="cannot embed texts"):
        check_job_model(settings, "ms-marco-minilm")


def test_a_remote_model_without_vision_is_refused_for_images() -> None:
    with pytest.raises(InvalidRequest, match="does not embed images"):
        check_remote_images({"capabilities": ["embedding"]}, "all-minilm")
    check_remote_images({"capabilities": ["embedding", "vision"]}, "nomic-embed-vision")
    check_remote_images({}, "a-server-that-does-not-say")


def write_image(path: Path, content: bytes = b"png") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def test_an_image_folder_changed_anywhere_is_another_job(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    for name in ("a/0.png", "b.png", "c.png"):
        write_image(folder / name)
    identity = job_identity(folder, read_records(folder), model="m")
    assert job_identity(folder, read_records(folder), model="m") == identity
    top = folder.stat().st_mtime_ns
    write_image(folder / "a" / "1.png")  # the top folder's mtime does not change
    assert folder.stat().st_mtime_ns == top
    added = job_identity(folder, read_records(folder), model="m")
    assert added != identity
    write_image(folder / "b.png", b"edited")  # edited in place
    os.utime(folder / "b.png", ns=(1, 1))
    assert job_identity(folder, read_records(folder), model="m") != added


class FixedEngine:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, inputs: list[str]) -> np.ndarray:
        self.seen.extend(inputs)
        return np.ones((len(inputs), 2), dtype=np.float32)

    def close(self) -> None:
        pass


def records_of(names: list[str]) -> Records:
    return Records([Record(n, n) for n in names], 0, images=False)


def test_saved_chunks_of_other_records_are_not_reused(tmp_path: Path) -> None:
    output = tmp_path / "out.npy"
    plan = JobPlan(chunk_size=2, batch_size=2, concurrency=1)
    parts = PartStore(output)
    parts.open({"job": 1})
    parts.write(0, ["a/0.png", "b.png"], np.ones((2, 2), dtype=np.float32))
    # An image added at the front shifts every record by one: chunk 0 now starts elsewhere.
    shifted = records_of(["a/0.png", "a/1.png", "b.png", "c.png"])
    with pytest.raises(JobMismatch, match="saved chunk 0 holds other records"):
        run_job(shifted, FixedEngine(), parts, output, plan)
    same = records_of(["a/0.png", "b.png", "c.png"])
    engine = FixedEngine()
    assert run_job(same, engine, parts, output, plan).resumed == 2
    assert engine.seen == ["c.png"]


class TooLongEngine(FixedEngine):
    def embed(self, inputs: list[str]) -> np.ndarray:
        raise InputTooLong(
            "input[1] has 602 tokens, more than the context length of 512 tokens "
            "(the input length exceeds the context length); send truncate: true to cut it"
        )


def test_an_engine_error_names_the_record_and_the_cli_flag(tmp_path: Path) -> None:
    output = tmp_path / "out.npy"
    parts = PartStore(output)
    parts.open({"job": 1})
    records = records_of([f"line{i}" for i in range(1, 11)])  # one batch
    plan = JobPlan(chunk_size=1000, batch_size=64, concurrency=1)
    with pytest.raises(BatchFailed) as failed:
        run_job(records, TooLongEngine(), parts, output, plan)
    message = str(failed.value)
    assert message.startswith("record 'line2' has 602 tokens"), message  # batch 0, input 1
    assert message.endswith("pass --truncate to cut it"), message
