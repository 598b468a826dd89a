"""Shards: per-subject work done in a fixed number of jobs per stage.

A subject's shard is a hash of its label, so adding subjects never moves anyone else, and the
DAG grows with the number of shards, not of subjects. A shard's arrays are packed (one row per
subject, in label order) so a training job opens a few files instead of thousands.
"""

import zlib

import numpy as np

from .io import atomic_path


def shard_of(subject: str, n_shards: int) -> int:
    return zlib.crc32(subject.encode()) % n_shards


def members(subjects, n_shards: int) -> dict:
    """shard -> its subjects, sorted; every shard is present, possibly empty."""
    out = {shard: [] for shard in range(n_shards)}
    for subject in sorted(subjects):
        out[shard_of(subject, n_shards)].append(subject)
    return out


class PackedArray:
    """An .npy written in place through a memory map and renamed into place when complete.

    Rows start as NaN: a subject that could not be processed reads as missing, never as zeros.
    """

    def __init__(self, path, shape, dtype=np.float16):
        self._context = atomic_path(path)
        self._tmp = self._context.__enter__()
        if np.prod(shape) == 0:  # an empty shard: memory maps cannot be empty
            self.array = np.full(shape, np.nan, dtype=dtype)
        else:
            self.array = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=dtype, shape=tuple(shape))
            self.array[...] = np.nan

    def __enter__(self):
        return self.array

    def __exit__(self, kind, value, traceback):
        if isinstance(self.array, np.memmap):
            self.array.flush()
        elif kind is None:
            np.save(self._tmp, self.array)
        del self.array
        return self._context.__exit__(kind, value, traceback)


def open_packed(path):
    """Read-only memory map of a packed array (no copy until rows are indexed)."""
    return np.load(path, mmap_mode="r")
