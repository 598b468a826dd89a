"""Atomic writes and checksums: a killed job never leaves a file that looks complete."""

import contextlib
import hashlib
import json
import os
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffixes); rename it into place on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_tsv(path, frame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, na_rep="n/a")


def read_tsv(path):
    import pandas as pd

    # subject labels such as 001 must stay text
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=True, dtype={"subject": str})


def save_npy(path, array) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def save_nifti(path, image) -> None:
    """nibabel gzips with mtime 0, so the same image gives the same bytes."""
    import nibabel as nib

    with atomic_path(path) as tmp:
        nib.save(image, tmp)


def save_figure(path, fig) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        # a fixed date keeps PNGs byte-identical across reruns
        fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def sha256(path, chunk=1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class BackgroundWriter:
    """Writes files atomically on a thread, so a large checkpoint is written while training
    goes on. One write in flight at a time: the previous one is finished before the next."""

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self._pool, self._pending = ThreadPoolExecutor(max_workers=1), None

    def write(self, path, payload) -> None:
        self.wait()
        self._pending = self._pool.submit(self._write, path, payload)

    def wait(self) -> None:
        """Block until the last write is on disk (re-raising its error, if any)."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    @staticmethod
    def _write(path, payload):
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(payload)
