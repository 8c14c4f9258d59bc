"""Look up what was learned about a reference, or learn it and keep it: the one flow every host runs.

The store is a memory of past learning, not a requirement: when it cannot be opened, read or
written, the flow logs why and learns (or returns what it learned) without it, and says so in
``source``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..images import image_hash
from ..store import StoreError
from .grid import preview_grid
from .learner import LearnSettings
from .masking import MaskedView
from .store import UnderstandingStore

log = logging.getLogger("pakati")

SERVED = "served from the store"
LEARNED = "learned"
NOT_STORED = "learned, not stored"


@dataclass
class Recalled:
    record: dict  # the understanding record (see ``learn``)
    preview: np.ndarray  # H x W x 3 float32: masked views beside their best reconstructions
    source: str  # SERVED, LEARNED or NOT_STORED
    location: str  # where the store keeps it, or "not stored"


def recall_or_learn(
    reference: np.ndarray,
    settings: LearnSettings,
    open_store: Callable[[], UnderstandingStore],
    run: Callable[[Callable[[MaskedView, np.ndarray], None]], dict],
    force: bool = False,
) -> Recalled:
    """The stored understanding of ``reference`` learned with ``settings`` (unless ``force``), else ``run(on_view)``:
    the host's learning, which calls ``on_view(view, reconstruction)`` for each view it reconstructs (they make
    the preview); what was learned is then stored with its preview."""
    key, fp = image_hash(reference), settings.fingerprint()
    store: UnderstandingStore | None = None
    record = grid = None
    try:
        store = open_store()
        record = None if force else store.get(key, fp)
        grid = store.preview(key, fp) if record is not None else None
    except StoreError as e:
        log.error("Pakati: the understanding store cannot be used, learning without it: %s", e)
    if record is not None and grid is None:
        grid = preview_grid([(reference, reference)])  # the stored preview is missing: show the reference
    source = SERVED
    if record is None:
        pairs: list[tuple[np.ndarray, np.ndarray]] = []
        record = run(lambda view, reconstruction: pairs.append((view.view, reconstruction)))
        grid = preview_grid(pairs)
        source = LEARNED
        try:
            if store is None:
                raise StoreError("the store could not be opened (see the log)", "store")
            store.put(record, reference)
            store.put_preview(key, fp, grid)
        except StoreError as e:  # what was learned is still returned; only keeping it failed
            log.error("Pakati: the understanding was learned but not stored: %s", e)
            source = NOT_STORED
    return Recalled(record, grid, source, store.location(key, fp) if store is not None else "not stored")
