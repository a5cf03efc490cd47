"""The primary keys a snapshot has fetched, so that records the API repeats across scroll pages load once.

A Python set of the keys held each key's string past its page, ~100 bytes a key with the set's slot:
at 400k users a run's peak was ~10 MB higher for it (benchmarks/memory.py, scale 4.0), and a
subscription of ten million users would hold most of a gigabyte. Here a key is its 64-bit hash,
8 bytes, in sorted numpy arrays that merge like a binary counter: a page is looked up in at most
log2(keys) arrays, and each hash is moved at most log2(keys) times.

Two distinct keys with one hash (about keys² / 2**65: under 1 in 10**8 at 400k keys) make the
second look like a repeat: it is skipped, the snapshot is one record short of ``totalHits``, and its
check fails the load with nothing committed. Python salts string hashes per process, so a re-run
hashes anew (unless PYTHONHASHSEED is set to a fixed value, which this project never sets).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


class SeenKeys:
    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []  # sorted int64 hashes, disjoint, each shorter than the one before

    def fresh(self, keys: Sequence[Hashable]) -> np.ndarray:
        """A mask over ``keys``: True where a key was not seen before, nor earlier in ``keys``. Those
        count as seen from now on."""
        hashes = np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys))
        new = np.zeros(len(hashes), dtype=bool)
        new[np.unique(hashes, return_index=True)[1]] = True
        for run in self._runs:
            at = np.searchsorted(run, hashes).clip(max=len(run) - 1)
            new &= run[at] != hashes
        added = hashes[new]
        if len(added):
            while self._runs and len(self._runs[-1]) <= len(added):
                added = np.concatenate((self._runs.pop(), added))
            added.sort()
            self._runs.append(added)
        return new
