"""Scratch arrays reused between batches: reuse changes no answer, and threads never share them."""

from __future__ import annotations

import threading

import numpy as np

from nhs_lookup.workspace import Workspace, workspace

from .test_speed_paths import _answer, _varied_queries


def test_buffers_are_reused_grown_and_zeroed():
    ws = Workspace()
    a = ws.zeros("x", (4, 5), np.float32)
    a[:] = 7
    b = ws.zeros("x", (2, 3), np.float32)
    assert np.shares_memory(a, b) and not b.any() and b.shape == (2, 3)
    c = ws.empty("x", (10, 10), np.float32)  # larger: a new buffer
    assert not np.shares_memory(a, c) and ws.empty("x", (3,), np.int32).dtype == np.int32
    assert ws.nbytes >= 100 * 4


def test_a_rezeroed_buffer_is_not_filled_again_until_it_is_handed_out_uninitialised():
    ws = Workspace()
    a = ws.zeros("counts", (3, 4), np.float32)
    a.reshape(-1)[[1, 6]] = 2
    ws.rezero("counts", np.float32, np.array([1, 6]))
    b = ws.zeros("counts", (3, 4), np.float32)
    assert np.shares_memory(a, b) and not b.any()
    ws.rezero("counts", np.float32, np.array([], dtype=np.int64))
    a.reshape(-1)[7] = 3  # behind the workspace's back: shows that zeros() trusts rezero, no fill
    assert ws.zeros("counts", (3, 4), np.float32).reshape(-1)[7] == 3
    b[0, 0] = 5  # written without rezero: the next zeros() must fill
    assert not ws.zeros("counts", (3, 4), np.float32).any()
    ws.rezero("counts", np.float32, np.array([], dtype=np.int64))
    ws.empty("counts", (3, 4), np.float32)[:] = 1  # handed out uninitialised: no longer known zero
    assert not ws.zeros("counts", (3, 4), np.float32).any()
    ws.rezero("counts", np.float32, np.arange(12))
    assert not ws.zeros("counts", (5, 5), np.float32).any()  # larger than the buffer: a new, filled one


def test_each_thread_has_its_own_workspace():
    seen = []
    t = threading.Thread(target=lambda: seen.append(workspace()))
    t.start()
    t.join()
    assert seen[0] is not workspace() and workspace() is workspace()


def test_lookups_in_concurrent_threads_equal_sequential_ones(sample_engine):
    """Two threads preparing batches at the same time each use their own buffers: the same answers as
    one thread doing both in turn."""
    queries = _varied_queries()
    halves = (queries[::2], queries[1::2])
    want = [[_answer(r) for r in sample_engine.lookup_many(h)] for h in halves]
    got: list[list] = [[], []]
    start = threading.Barrier(2)

    def run(i: int) -> None:
        start.wait()
        for _ in range(3):
            got[i] = [_answer(r) for r in sample_engine.lookup_many(halves[i])]

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == want
