"""What `gateway embed` checks before it runs: the model can embed the input and is here."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.bulk.model_check import check_job_model, check_remote_images
from gateway.errors import InvalidRequest, ModelNotFound, UnsupportedInput
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
