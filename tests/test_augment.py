"""Cached augmentation: seeded, reproducible, varied, and channel-consistent."""

import numpy as np
import pytest

from legibility import augment

SETTINGS = {"copies": 3, "rotate_deg": 10, "scale": 0.1, "translate_mm": 5, "elastic_prob": 1.0, "elastic_mm": 4,
            "elastic_control_points": 5, "bias_field_prob": 0.5, "bias_field_coeff": 0.3, "noise_prob": 0.5,
            "noise_std": 0.05, "gamma_prob": 0.5, "gamma": [0.7, 1.5], "flip_lr_prob": 0}  # fmt: skip


@pytest.fixture(scope="module")
def volume():
    grid = np.indices((32, 32, 32)).astype(np.float32)
    blob = np.exp(-(((grid - 15.5) / 8) ** 2).sum(axis=0))
    return np.stack([blob, 2 * blob, np.full_like(blob, np.nan)])  # third modality missing


def test_copies_are_reproducible_and_differ(volume):
    chain = augment.transform(SETTINGS, "zscore", 32, 96)
    first = augment.copies(volume, chain, 3, seed=1, subject="01")
    again = augment.copies(volume, augment.transform(SETTINGS, "zscore", 32, 96), 3, seed=1, subject="01")
    assert first.dtype == np.float16 and first.shape == (3, *volume.shape)
    assert np.array_equal(first, again, equal_nan=True)
    assert not np.array_equal(first[0], first[1], equal_nan=True)
    other = augment.copies(volume, chain, 1, seed=1, subject="02")
    assert not np.array_equal(first[0], other[0], equal_nan=True)


def test_missing_channels_stay_missing(volume):
    out = augment.copies(volume, augment.transform(SETTINGS, "zscore", 32, 96), 2, seed=1, subject="01")
    assert np.isnan(out[:, 2]).all() and np.isfinite(out[:, :2]).all()


def test_channels_share_one_geometric_transform(volume):
    geometric = {**SETTINGS, "bias_field_prob": 0, "noise_prob": 0, "gamma_prob": 0}
    out = augment.copies(volume[:2], augment.transform(geometric, "zscore", 32, 96), 2, seed=4, subject="01").astype(np.float32)
    # channel 1 is twice channel 0, before and after the same warp
    assert np.allclose(out[:, 1], 2 * out[:, 0], atol=2e-2)
    centre = [(np.argwhere(c > 0.5 * c.max()).mean(axis=0)) for c in out[:, 0]]
    assert np.linalg.norm(centre[0] - centre[1]) > 0.1  # the copies moved differently
