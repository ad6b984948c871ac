"""How the gateway is laid out on Ray Serve: replicas, models per replica, memory, autoscaling.

Read from GATEWAY_RAY_* variables (or a `serve run` config's `args`, same names lower-cased
without the prefix). Per-model facts come from the registry, process knobs from Settings; this
adds only what exists because there are several replicas.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.registry import Registry
from gateway.settings import Settings, settings_field_names
from gateway.units import parse_bytes

log = logging.getLogger("gateway.distributed")

ENV_PREFIX = "GATEWAY_RAY_"
# A replica's own footprint beyond its models: Python, Ray's worker, the app, ORT's runtime.
REPLICA_BASE_BYTES = 512 * 2**20


class OptionsError(ValueError):
    """A GATEWAY_RAY_* value is malformed; the message names it."""


@dataclass(frozen=True)
class RayServeOptions:
    address: str | None = None  # a running cluster to join; None starts a local one
    models_per_replica: int = 0  # 0: GATEWAY_MAX_LOADED_MODELS, else 3
    min_replicas: int = 1
    max_replicas: int = 4
    initial_replicas: int | None = None
    # Autoscaling keeps each replica's queue (requests in flight + waiting) near this.
    target_ongoing_requests: float = 16.0
    max_ongoing_requests: int = 64
    replica_cpus: float = 1.0
    replica_memory: int | None = None  # bytes of models per replica; None: from the registry
    ingress_replicas: int = 1
    ingress_cpus: float = 0.25

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, object] | None = None,
    ) -> RayServeOptions:
        """From GATEWAY_RAY_<FIELD> variables, then from `overrides` keyed by field name."""
        import os

        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            env = ENV_PREFIX + field.name.upper()
            raw: object = (overrides or {}).get(field.name, environ.get(env))
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue
            try:
                values[field.name] = _parse(field.name, raw)
            except (ValueError, TypeError) as exc:
                raise OptionsError(f"{env}: {exc}") from None
        unknown = set(overrides or {}) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise OptionsError(f"unknown Ray option(s): {', '.join(sorted(unknown))}")
        options = cls(**values)
        options.check()
        return options

    def check(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise OptionsError(
                f"replicas: need 1 <= min ({self.min_replicas}) <= max ({self.max_replicas})"
            )
        initial = self.initial_replicas
        if initial is not None and not self.min_replicas <= initial <= self.max_replicas:
            raise OptionsError(f"initial_replicas {initial} is outside min..max")
        if self.models_per_replica < 0 or self.ingress_replicas < 1:
            raise OptionsError("models_per_replica must be >= 0 and ingress_replicas >= 1")
        if self.target_ongoing_requests <= 0 or self.max_ongoing_requests < 1:
            raise OptionsError("target_ongoing_requests and max_ongoing_requests must be > 0")
        if self.replica_cpus <= 0 or self.ingress_cpus < 0:
            raise OptionsError("replica_cpus must be > 0 and ingress_cpus >= 0")

    # -- what the options mean for the replicas --------------------------------------------------

    def model_limit(self, settings: Settings) -> int:
        return self.models_per_replica or settings.max_loaded_models or 3

    def model_budget(self, settings: Settings, registry: Registry) -> int | None:
        """Bytes of models one replica may hold: the option, else the registry's estimates of
        the `model_limit` largest models; None when neither says (then GATEWAY_MAX_RAM rules).

        A model without an estimate could be the largest: a sum that counts it as 0 would make
        the budget too small for `model_limit` models, so then the registry says nothing."""
        if self.replica_memory is not None:
            return self.replica_memory
        unestimated = [spec.name for spec in registry if spec.memory_estimate_bytes is None]
        if unestimated:
            log.warning(
                "no memory_estimate for %s: replicas use GATEWAY_MAX_RAM as their model budget "
                "(set GATEWAY_RAY_REPLICA_MEMORY, or the estimates, to size them)",
                ", ".join(unestimated),
            )
            return None
        estimates = sorted((spec.memory_estimate_bytes or 0 for spec in registry), reverse=True)
        return sum(estimates[: self.model_limit(settings)]) or None

    def replica_settings(self, settings: Settings, registry: Registry) -> Settings:
        """The settings each model replica runs with.

        Serve's per-replica LRU decides which models a replica keeps, so the engine keeps a
        model until Serve evicts it (keep_alive forever; a request's own keep_alive still
        applies), holds at most as many, and splits the machine's cores by replica.
        """
        budget = self.model_budget(settings, registry)
        return dataclasses.replace(
            settings,
            keep_alive=math.inf,
            max_loaded_models=self.model_limit(settings),
            threads=settings.threads or max(1, math.ceil(self.replica_cpus)),
            max_ram=settings.max_ram if budget is None else str(budget),
        )

    def model_deployment_options(self, settings: Settings, registry: Registry) -> dict[str, Any]:
        """`Deployment.options(...)` for the model replicas."""
        actor: dict[str, Any] = {"num_cpus": self.replica_cpus}
        budget = self.model_budget(settings, registry)
        if budget is not None:
            actor["memory"] = budget + REPLICA_BASE_BYTES
        options: dict[str, Any] = {
            "ray_actor_options": actor,
            "max_ongoing_requests": self.max_ongoing_requests,
        }
        if self.min_replicas == self.max_replicas:
            options["num_replicas"] = self.min_replicas
        else:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "initial_replicas": self.initial_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        return options

    def ingress_deployment_options(self) -> dict[str, Any]:
        return {
            "num_replicas": self.ingress_replicas,
            "ray_actor_options": {"num_cpus": self.ingress_cpus},
            # The ingress only forwards: it holds every request for its whole duration.
            "max_ongoing_requests": self.max_ongoing_requests * self.max_replicas,
        }


def _parse(name: str, raw: object) -> Any:
    if name == "address":
        return str(raw).strip()
    if name == "replica_memory":
        return parse_bytes(raw if isinstance(raw, int) else str(raw).strip())
    if name in {"target_ongoing_requests", "replica_cpus", "ingress_cpus"}:
        return float(raw)  # type: ignore[arg-type]
    value = raw if isinstance(raw, int) else int(str(raw).strip())
    return value


def settings_overrides(raw: object) -> dict[str, str]:
    """A `serve run` config's `settings` mapping as the text Settings.load parses: a YAML list
    joined with commas (`api_keys: [k1, k2]`), booleans as true/false. str() made a list
    "['k1', 'k2']"; nested mappings, list items with commas and unknown names are errors."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise OptionsError("settings: expected a mapping of gateway settings by field name")
    unknown = sorted(str(name) for name in raw if name not in settings_field_names())
    if unknown:
        raise OptionsError(f"settings: unknown gateway setting(s): {', '.join(unknown)}")
    texts: dict[str, str] = {}
    for name, value in raw.items():
        if value is None:
            continue
        if isinstance(value, bool):
            texts[name] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            items = [str(item) for item in value]
            if any(isinstance(item, list | tuple | Mapping) for item in value) or any(
                "," in item for item in items
            ):
                raise OptionsError(
                    f"settings.{name}: list items must be plain values without commas"
                )
            texts[name] = ",".join(items)
        elif isinstance(value, Mapping):
            raise OptionsError(f"settings.{name}: expected a value or a list, not a mapping")
        else:
            texts[name] = str(value)
    return texts
