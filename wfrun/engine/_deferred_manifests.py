"""The engine's view of the store's manifest cache: entries are written only after a change.

A command refused for bad input must leave `.wfstate/` byte for byte as it was, so a manifest
parsed on a cache miss is held here and handed to the store only once the command has changed
state (`flush`); until then this process reads it from memory.
"""

from __future__ import annotations

from typing import Any

from wfrun.store.abc import Store


class DeferredManifestCache:
    """A `loader.ManifestCache` reading through the store and holding writes until `flush`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pending: dict[str, Any] = {}

    def cached_manifest(self, digest: str) -> Any:
        """The pending document, else the store's cached one, else None."""
        document = self.pending.get(digest)  # one dict operation: tick and serve use threads
        return document if document is not None else self.store.cached_manifest(digest)

    def cache_manifest(self, digest: str, document: Any) -> None:
        """Hold `document` until the command has changed state."""
        self.pending[digest] = document

    def flush(self) -> None:
        """Give the held documents to the store (call after a state change succeeded)."""
        while True:
            try:
                digest, document = self.pending.popitem()  # atomic: threads may flush at once
            except KeyError:
                return
            self.store.cache_manifest(digest, document)
