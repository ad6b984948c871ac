"""gateway.budget on plain data: what fits, what is evicted, how a refusal reads."""

from __future__ import annotations

from gateway.budget import (
    FILE_SIZE_FACTOR,
    Limits,
    Resident,
    choose_victim,
    estimate,
    fits,
    no_room_message,
    over_budget,
    used,
)

MIB = 2**20
NOW = 1_000.0


def model(name: str, mib: int, last_used: float, **fields: object) -> Resident:
    return Resident(name=name, bytes=mib * MIB, last_used=last_used, **fields)  # type: ignore[arg-type]


def test_a_load_fits_within_the_ram_budget_and_not_past_it() -> None:
    limits = Limits(ram_bytes=1000 * MIB, vram_bytes=None)
    loaded = [model("a", 400, 1.0), model("b", 300, 2.0)]
    assert used(loaded, "cpu") == 700 * MIB
    assert fits(loaded, 300 * MIB, "cpu", limits)
    assert not fits(loaded, 301 * MIB, "cpu", limits)


def test_an_empty_device_takes_any_one_model_however_large() -> None:
    limits = Limits(ram_bytes=100 * MIB, vram_bytes=100 * MIB)
    assert fits([], 5000 * MIB, "cpu", limits)
    # A model on the other device does not count against this one.
    assert fits([model("gpu", 90, 1.0, device="cuda")], 5000 * MIB, "cpu", limits)


def test_uncapped_budget_fits_everything() -> None:
    loaded = [model("a", 10_000, 1.0)]
    assert fits(loaded, 10_000 * MIB, "cpu", Limits(ram_bytes=None, vram_bytes=None))
    assert not over_budget(loaded, "cpu", Limits(ram_bytes=None, vram_bytes=None))


def test_vram_budget_counts_gpu_models_only() -> None:
    limits = Limits(ram_bytes=10_000 * MIB, vram_bytes=1000 * MIB)
    loaded = [
        model("on-gpu", 800, 1.0, device="cuda"),
        model("on-cpu", 5000, 2.0, device="cpu"),
    ]
    assert used(loaded, "cuda") == 800 * MIB
    assert fits(loaded, 200 * MIB, "cuda", limits)
    assert not fits(loaded, 201 * MIB, "cuda", limits)
    # The host budget is far from full: a CPU model still fits.
    assert fits(loaded, 4000 * MIB, "cpu", limits)
    assert not over_budget(loaded, "cuda", limits)
    assert over_budget([*loaded, model("big", 300, 3.0, device="cuda")], "cuda", limits)


def test_model_count_limit_applies_across_devices() -> None:
    limits = Limits(ram_bytes=None, vram_bytes=None, max_models=2)
    loaded = [model("a", 1, 1.0), model("b", 1, 2.0, device="cuda")]
    assert not fits(loaded, 1, "cpu", limits)
    assert fits(loaded[:1], 1, "cpu", limits)
    assert fits(loaded, 1, "cpu", Limits(ram_bytes=None, vram_bytes=None, max_models=0))


def test_least_recently_used_idle_model_is_the_victim() -> None:
    loaded = [model("newer", 10, 5.0), model("older", 10, 1.0), model("middle", 10, 3.0)]
    victim = choose_victim(loaded, now=NOW)
    assert victim is not None and victim.name == "older"


def test_busy_waiting_and_pinned_models_are_never_victims() -> None:
    loaded = [
        model("serving", 10, 1.0, in_flight=2),
        model("awaited", 10, 2.0, waiting=1),
        model("pinned", 10, 3.0, pinned=True),
        model("idle", 10, 9.0),
    ]
    victim = choose_victim(loaded, now=NOW)
    assert victim is not None and victim.name == "idle"
    assert choose_victim(loaded[:3], now=NOW) is None


def test_a_model_past_its_keep_alive_goes_before_older_ones_within_it() -> None:
    loaded = [
        model("kept-for-an-hour", 10, 1.0, expires_at=NOW + 3600),
        model("expired", 10, 500.0, expires_at=NOW - 1),
        model("kept-forever", 10, 0.5),  # expires_at None: keep_alive < 0
    ]
    victim = choose_victim(loaded, now=NOW)
    assert victim is not None and victim.name == "expired"
    # Without an expired one, least recently used wins whatever its keep-alive.
    victim = choose_victim(loaded[::2], now=NOW)
    assert victim is not None and victim.name == "kept-forever"


def test_victims_can_be_limited_to_a_device_and_exclude_the_new_model() -> None:
    loaded = [
        model("cpu-old", 10, 1.0),
        model("gpu-old", 10, 2.0, device="cuda"),
        model("gpu-new", 10, 3.0, device="cuda"),
    ]
    victim = choose_victim(loaded, now=NOW, device="cuda")
    assert victim is not None and victim.name == "gpu-old"
    victim = choose_victim(loaded, now=NOW, device="cuda", exclude="gpu-old")
    assert victim is not None and victim.name == "gpu-new"
    assert choose_victim(loaded[:1], now=NOW, exclude="cpu-old") is None


def test_estimate_prefers_measurement_then_registry_then_file_size() -> None:
    assert estimate(300 * MIB, 100 * MIB, 50 * MIB) == 300 * MIB
    assert estimate(None, 100 * MIB, 50 * MIB) == 100 * MIB
    assert estimate(None, None, 100 * MIB) == int(100 * MIB * FILE_SIZE_FACTOR)


def test_refusal_names_the_model_its_need_the_budget_and_the_holders() -> None:
    loaded = [model("serving", 400, 1.0, in_flight=3), model("kept", 200, 2.0, pinned=True)]
    message = no_room_message("big-model", 700 * MIB, loaded, 1000 * MIB)
    assert message == (
        "not enough memory to load big-model (needs about 700 MiB, budget 1000 MiB); "
        "held by: serving (400 MiB, 3 in flight), kept (200 MiB, pinned)"
    )
    assert "budget no cap" in no_room_message("m", MIB, [], None)


def test_no_room_message_names_the_loaded_model_limit_when_it_is_the_reason() -> None:
    loaded = [model("m1", 40, NOW, in_flight=1), model("m2", 40, NOW, in_flight=2)]
    message = no_room_message("m3", 46 * MIB, loaded, 19321 * MIB, max_models=2)
    assert message == (
        "cannot load m3: 2 models are loaded, the limit (GATEWAY_MAX_LOADED_MODELS) is 2, and "
        "none can be unloaded; held by: m1 (40 MiB, 1 in flight), m2 (40 MiB, 2 in flight)"
    )
    # Below the limit, memory is the reason.
    assert no_room_message("m3", MIB, loaded, MIB, max_models=3).startswith("not enough memory")
