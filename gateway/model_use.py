"""ModelUse: what `ModelManager.use(spec)` returns, a request's hold on a loaded model: it
takes the model (loading it if needed) on entry, and on exit sets the keep_alive the request
asked for and hands the model back to the manager (gateway.manager)."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from gateway.errors import Busy
from gateway.loaded import LoadedModel
from gateway.specs import ModelSpec

if TYPE_CHECKING:
    from gateway.manager import ModelManager


class ModelUse:
    """`async with manager.use(spec) as (model, load_seconds)`. A class: @asynccontextmanager's
    generator costs ~10 us on every request."""

    __slots__ = ("_arrival", "_keep_alive", "_manager", "_model", "_spec")

    def __init__(self, manager: ModelManager, spec: ModelSpec, keep_alive: float | None) -> None:
        self._manager = manager
        self._spec = spec
        self._keep_alive = keep_alive
        self._arrival = next(manager.arrivals)
        self._model: LoadedModel | None = None

    async def __aenter__(self) -> tuple[LoadedModel, float]:
        model, load_seconds = await self._manager._acquire(self._spec)
        self._model = model
        return model, load_seconds

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._model is not None:
            model, self._model = self._model, None
            # A request refused Busy (queue full, model unloaded) was not served: as in Ollama,
            # which refuses before scheduling, it does not become the last request.
            if not isinstance(exc, Busy):
                keep_alive = self._keep_alive
                if keep_alive is None:
                    keep_alive = self._manager.default_keep_alive(self._spec)
                model.set_keep_alive(keep_alive, self._arrival)
            await self._manager._release(model)
