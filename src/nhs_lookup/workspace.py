"""Scratch arrays reused from one batch to the next.

Preparing a batch builds about a dozen (batch, catalogue) arrays that live only inside
:meth:`~nhs_lookup.retrieval.CatalogueIndex.prepare_batch`. Allocated afresh, each one is mapped, faulted
in and zeroed by the kernel page by page: measured at 35-48 thousand page faults and 0.1-0.2 CPU-s of
system time per 1,180 names, a sixth of the batch. A :class:`Workspace` keeps them between batches.
Each thread has its own (:func:`workspace`), so concurrent lookups never share a buffer; arrays it
hands out are valid until the same name is asked for again, and must not outlive the batch.
"""

from __future__ import annotations

import threading

import numpy as np


class Workspace:
    """Named scratch arrays, grown to the largest size asked for and reused."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, np.dtype], np.ndarray] = {}

    def empty(self, name: str, shape: tuple[int, ...], dtype: object) -> np.ndarray:
        """An uninitialised C-contiguous array of *shape* (the buffer *name*, for this dtype)."""
        dt = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64))
        buf = self._buffers.get((name, dt))
        if buf is None or buf.size < size:
            buf = self._buffers[(name, dt)] = np.empty(size, dtype=dt)
        return buf[:size].reshape(shape)

    def zeros(self, name: str, shape: tuple[int, ...], dtype: object) -> np.ndarray:
        out = self.empty(name, shape, dtype)
        out.fill(0)
        return out

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self._buffers.values())


_LOCAL = threading.local()


def workspace() -> Workspace:
    """This thread's workspace."""
    ws = getattr(_LOCAL, "workspace", None)
    if ws is None:
        ws = _LOCAL.workspace = Workspace()
    return ws
