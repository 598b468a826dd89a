"""Writes are atomic: a failed write leaves nothing that looks complete."""

import nibabel as nib
import numpy as np
import pytest

from legibility.io import atomic_path, save_nifti, sha256
from legibility.shards import PackedArray, members, shard_of


def test_a_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "table.tsv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_packed_array_appears_only_when_complete(tmp_path):
    path = tmp_path / "shard.npy"
    with pytest.raises(RuntimeError):
        with PackedArray(path, (2, 3)) as array:
            array[0] = 1
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with PackedArray(path, (2, 3)) as array:
        array[0] = 1
    loaded = np.load(path)
    assert loaded[0].tolist() == [1, 1, 1] and np.isnan(loaded[1]).all()  # unfilled rows read as missing
    with PackedArray(tmp_path / "empty.npy", (0, 3)):
        pass
    assert np.load(tmp_path / "empty.npy").shape == (0, 3)


def test_nifti_bytes_are_reproducible(tmp_path):
    image = nib.Nifti1Image(np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.eye(4))
    save_nifti(tmp_path / "a.nii.gz", image)
    save_nifti(tmp_path / "b.nii.gz", image)
    assert sha256(tmp_path / "a.nii.gz") == sha256(tmp_path / "b.nii.gz")


def test_shards_are_stable_when_subjects_are_added():
    before = members([f"{i:03d}" for i in range(100)], 8)
    after = members([f"{i:03d}" for i in range(101)], 8)
    changed = [k for k in before if before[k] != after[k]]
    assert changed == [shard_of("100", 8)]
    assert sum(map(len, after.values())) == 101
