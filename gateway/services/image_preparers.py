"""How an image model turns a decoded picture into its input, known before the model is taken.

A request fetches, decodes and prepares its images first and takes the model only to run them,
so slow URLs never keep a model in flight (not evictable, its keep_alive not running). The
preparation needs only the registry entry and the preprocessor config: a loaded encoder's is
used as is; otherwise one is read from the model's files and kept while those files stay the
same.
"""

from __future__ import annotations

import asyncio

from gateway.encoders.base import Capability
from gateway.encoders.kinds import Prepare, capabilities_of, image_preparer_from_files
from gateway.encoders.views import image_embedder
from gateway.errors import ModelLoadError
from gateway.load_failures import files_state
from gateway.manager import ModelManager
from gateway.specs import ModelSpec


class ImagePreparers:
    def __init__(self, models: ModelManager) -> None:
        self.models = models
        self._read: dict[str, tuple[object, Prepare]] = {}  # by model: (files state, preparer)

    async def get(self, spec: ModelSpec) -> Prepare | None:
        """`spec`'s preparation without holding the model: the loaded encoder's, else one read
        from its files. None when they are not here yet (the load pulls them) or cannot be read
        (the load then says why)."""
        model = self.models.get(spec.name)
        if model is not None:
            return image_embedder(model.encoder).prepare_image
        store = self.models.store
        if Capability.EMBED_IMAGE not in capabilities_of(spec) or store.missing(spec):
            return None
        paths = store.paths(spec)
        state = files_state(paths)
        known = self._read.get(spec.name)
        if known is not None and known[0] == state:
            return known[1]
        try:
            prepare = await asyncio.to_thread(image_preparer_from_files, spec, paths)
        except ModelLoadError:
            return None
        if prepare is None:
            return None
        self._read[spec.name] = (state, prepare)
        return prepare
