"""GATEWAY_RAY_* options and what they make of the replicas: settings, Ray resources,
autoscaling on queue depth."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from gateway.distributed.options import (
    REPLICA_BASE_BYTES,
    OptionsError,
    RayServeOptions,
    settings_overrides,
)
from gateway.registry import Registry
from gateway.settings import Settings
from tools.models import minilm_entry, write_registry
from tools.paths import REPO

MiB = 2**20


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(REPO / "registry.yaml")


def test_loads_from_environment_and_overrides() -> None:
    options = RayServeOptions.load(
        environ={
            "GATEWAY_RAY_MIN_REPLICAS": "2",
            "GATEWAY_RAY_MAX_REPLICAS": "6",
            "GATEWAY_RAY_REPLICA_MEMORY": "2GiB",
            "GATEWAY_RAY_TARGET_ONGOING_REQUESTS": "8",
        },
        overrides={"models_per_replica": 2, "address": "auto"},
    )
    assert (options.min_replicas, options.max_replicas) == (2, 6)
    assert options.replica_memory == 2 * 2**30
    assert options.target_ongoing_requests == 8.0
    assert (options.models_per_replica, options.address) == (2, "auto")


@pytest.mark.parametrize(
    ("environ", "overrides", "message"),
    [
        ({"GATEWAY_RAY_MIN_REPLICAS": "three"}, {}, "GATEWAY_RAY_MIN_REPLICAS"),
        ({"GATEWAY_RAY_MIN_REPLICAS": "5", "GATEWAY_RAY_MAX_REPLICAS": "2"}, {}, "min (5)"),
        ({"GATEWAY_RAY_REPLICA_MEMORY": "lots"}, {}, "GATEWAY_RAY_REPLICA_MEMORY"),
        ({}, {"replicas": 3}, "unknown Ray option(s): replicas"),
        ({}, {"replica_cpus": 0}, "replica_cpus"),
    ],
)
def test_bad_options_name_the_culprit(
    environ: dict[str, str], overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(OptionsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RayServeOptions.load(environ=environ, overrides=overrides)


def test_replica_settings_hand_eviction_to_serve(registry: Registry) -> None:
    settings = Settings.load(environ={})
    options = RayServeOptions(models_per_replica=2, replica_cpus=1.5)
    replica = options.replica_settings(settings, registry)
    assert replica.keep_alive == math.inf
    assert replica.max_loaded_models == 2
    assert replica.threads == 2  # its share of cores, rounded up
    # The two largest registry estimates: qwen3-embedding 3GiB + splade-pp-en 1500MiB.
    assert replica.max_ram == str(4572 * MiB)
    assert options.model_budget(settings, registry) == 4572 * MiB


def test_model_limit_and_budget_fall_back_to_settings(registry: Registry) -> None:
    settings = Settings.load(environ={"GATEWAY_MAX_LOADED_MODELS": "1", "GATEWAY_THREADS": "3"})
    options = RayServeOptions(replica_memory=512 * MiB)
    replica = options.replica_settings(settings, registry)
    assert replica.max_loaded_models == 1 and replica.threads == 3
    assert replica.max_ram == str(512 * MiB)
    assert RayServeOptions().model_limit(Settings.load(environ={})) == 3


def test_deployment_options_autoscale_on_queue_depth(registry: Registry) -> None:
    settings = Settings.load(environ={})
    options = RayServeOptions(min_replicas=1, max_replicas=4, target_ongoing_requests=12)
    deployment = options.model_deployment_options(settings, registry)
    assert deployment["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "initial_replicas": None,
        "target_ongoing_requests": 12,
    }
    assert "num_replicas" not in deployment
    # Ray schedules a replica where its models' memory (plus its own) fits.
    budget = options.model_budget(settings, registry)
    assert budget is not None
    assert deployment["ray_actor_options"] == {
        "num_cpus": 1.0,
        "memory": budget + REPLICA_BASE_BYTES,
    }
    fixed = RayServeOptions(min_replicas=2, max_replicas=2).model_deployment_options(
        settings, registry
    )
    assert fixed["num_replicas"] == 2 and "autoscaling_config" not in fixed


def test_a_model_without_an_estimate_leaves_the_budget_to_max_ram(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Counted as 0, the unestimated model made a budget of one model for two slots.
    entries = {
        "big": minilm_entry(tmp_path, memory_estimate="1200MiB"),
        "small": minilm_entry(tmp_path),
    }
    registry = Registry.load(
        write_registry(tmp_path / "registry.yaml", entries, default_model="big")
    )
    settings = Settings.load(environ={"GATEWAY_MAX_RAM": "3GiB"})
    options = RayServeOptions(models_per_replica=2)
    with caplog.at_level(logging.WARNING, logger="gateway.distributed"):
        assert options.model_budget(settings, registry) is None
    assert "no memory_estimate for small" in caplog.text
    assert options.replica_settings(settings, registry).max_ram == "3GiB"
    assert "memory" not in options.model_deployment_options(settings, registry)["ray_actor_options"]


def test_config_settings_keep_lists_and_refuse_what_they_cannot_mean() -> None:
    # A serve-config.yaml `settings:` mapping, as YAML parses it.
    texts = settings_overrides(
        {"api_keys": ["k1", "k2"], "auto_pull": False, "max_inputs": 64, "registry": "r.yaml"}
    )
    assert texts == {
        "api_keys": "k1,k2",
        "auto_pull": "false",
        "max_inputs": "64",
        "registry": "r.yaml",
    }
    assert Settings.load(environ={}, overrides=texts).api_keys == ("k1", "k2")
    assert settings_overrides(None) == {}
    with pytest.raises(OptionsError, match=r"settings\.api_keys: expected a value or a list"):
        settings_overrides({"api_keys": {"k1": 1}})
    with pytest.raises(OptionsError, match="without commas"):
        settings_overrides({"api_keys": ["a,b"]})
    with pytest.raises(OptionsError, match=r"unknown gateway setting.*: api_key$"):
        settings_overrides({"api_key": "k1"})
    with pytest.raises(OptionsError, match="expected a mapping"):
        settings_overrides(["api_keys"])
