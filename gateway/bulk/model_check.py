"""Before a bulk job starts its engine (or Ray): can the model do this job, and is it here?

`gateway embed` and the Ray Data corpus job run for minutes; a model that cannot embed what
they read, a task or width it does not have, or files that are not pulled would otherwise fail
only once the engine (or every Ray actor) loads it, or, for a text model given images, succeed
with vectors of the images' base64 text.
"""

from __future__ import annotations

from gateway.encoders import Capability, capabilities_of, missing_capability
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.registry import Registry
from gateway.services.checks import check_dimensions, check_task
from gateway.settings import Settings
from gateway.sources import ModelStore

EMBEDS = frozenset({Capability.EMBED_TEXT, Capability.EMBED_IMAGE})


def check_job_model(
    settings: Settings,
    model: str,
    *,
    images: bool = False,
    task: str | None = None,
    dimensions: int | None = None,
) -> str:
    """The model's registry name; raises a GatewayError that says what is wrong."""
    registry = Registry.load(settings.registry)
    resolved = registry.resolve(model)
    spec = resolved.spec
    capabilities = capabilities_of(spec)
    if images and Capability.EMBED_IMAGE not in capabilities:
        raise missing_capability(
            spec.name, capabilities, "embed images", "a folder of images needs an image model"
        )
    if not capabilities & EMBEDS:
        raise missing_capability(spec.name, capabilities, "embed texts into single vectors")
    check_task(spec, task or resolved.task)
    check_dimensions(spec, dimensions)
    store = ModelStore(settings.models_dir, registry.base_dir)
    if not settings.auto_pull and not store.is_present(spec):
        raise ModelNotFound(f"model '{spec.name}' not found, try pulling it first")
    return spec.name


def check_remote_images(show: object, model: str) -> None:
    """`/api/show`'s answer, for a folder of images sent to --url: its `capabilities` (Ollama's
    names) must include vision. A server that lists none is not second-guessed."""
    capabilities = show.get("capabilities") if isinstance(show, dict) else None
    if isinstance(capabilities, list) and "vision" not in capabilities:
        raise InvalidRequest(
            f"model '{model}' does not embed images (its capabilities: "
            f"{', '.join(capabilities) or 'none'}); a folder of images needs an image model"
        )
