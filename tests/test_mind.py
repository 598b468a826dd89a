"""MIND networks: the k = 1 KL estimator and the network against brute force, and the feature matrix."""

import math

import numpy as np
import pytest

from legibility import mind
from legibility.mind import kl_divergence, mind_network, subject_features


def brute_kl(x, y):
    """The Wang-Kulkarni-Verdu k = 1 estimator straight from full distance matrices."""
    (n, d), m = x.shape, len(y)
    within = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(within, np.inf)  # the nearest OTHER point; duplicates still give 0
    r = within.min(1)
    s = np.sqrt(((x[:, None] - y[None]) ** 2).sum(-1)).min(1)
    keep = (r > 0) & (s > 0)
    return max(0.0, d / n * np.log(s[keep] / r[keep]).sum() + math.log(m / (n - 1)))


def brute_mind(features, labels, regions):
    network = np.zeros((len(regions), len(regions)))
    for a, first in enumerate(regions):
        for b, second in enumerate(regions):
            if a != b:
                x, y = features[labels == first], features[labels == second]
                network[a, b] = 1 / (1 + brute_kl(x, y) + brute_kl(y, x))
    return network


def test_kl_divergence_by_hand():
    x, y = np.array([[0.0], [1.0], [3.0]]), np.array([[10.0]])
    # r = 1, 1, 2; s = 10, 9, 7; d = 1, n = 3, m = 1
    assert kl_divergence(x, y) == pytest.approx((math.log(10) + math.log(9) + math.log(3.5)) / 3 + math.log(1 / 2))
    # duplicated x: r = 0, 0, 1 -> the first two terms are dropped, but n = 3 stays the divisor
    assert kl_divergence(np.array([[0.0], [0.0], [1.0]]), np.array([[3.0], [5.0]])) == pytest.approx(math.log(2) / 3)
    assert kl_divergence(x, x + 0.01) == 0.0  # a negative estimate is clipped at 0
    with pytest.raises(ValueError):
        kl_divergence(x[:1], y)


@pytest.mark.parametrize(
    "n, m, d, step",
    [(50, 80, 3, None), (120, 40, 1, None), (60, 60, 5, None), (30, 1, 2, None), (200, 150, 2, 0.1), (90, 70, 3, 1.0)],
)
def test_kl_divergence_matches_brute_force(n, m, d, step):
    draw = np.random.default_rng(n * m + d)
    x, y = draw.normal(0, 1, (n, d)), draw.normal(2, 1.5, (m, d))
    if step:  # quantised values: duplicated points within x and between x and y
        x, y = np.round(x / step) * step, np.round(y / step) * step
        assert len(np.unique(x, axis=0)) < n and (x[:, None] == y[None]).all(-1).any()
    expected = brute_kl(x, y)
    assert expected > 0  # not the clipped value, which would hide a wrong sum
    assert kl_divergence(x, y) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    if m > 1:
        assert kl_divergence(y, x) == pytest.approx(brute_kl(y, x), rel=1e-12, abs=1e-12)


def random_subject(sizes, d=3, seed=0, step=1.0):
    """Regions with their own mean and spread, some quantised; voxels shuffled, plus label 99 not asked for."""
    draw = np.random.default_rng(seed)
    labels = np.repeat(np.arange(1, len(sizes) + 1), sizes)
    means, spreads = draw.normal(0, 1, (len(sizes), d)), draw.uniform(0.5, 2, (len(sizes), d))
    features = draw.normal(means[labels - 1], spreads[labels - 1])
    coarse = labels % 2 == 0
    features[coarse] = np.round(features[coarse] / step) * step
    features = np.vstack([features, draw.normal(size=(7, d))])
    labels = np.concatenate([labels, np.full(7, 99)])
    order = draw.permutation(len(labels))
    return features[order], labels[order]


def test_mind_network_matches_brute_force():
    features, labels = random_subject([30, 45, 60, 25, 50, 40])
    regions = [4, 1, 6, 3, 2, 5]  # any order: the matrix follows it
    coarse = features[labels == 2]  # duplicated voxels within a region (r = 0) and across regions (s = 0)
    assert len(np.unique(coarse, axis=0)) < len(coarse)
    assert (coarse[:, None] == features[labels == 4][None]).all(-1).any()
    network = mind_network(features, labels, regions)
    assert network.dtype == np.float64
    np.testing.assert_allclose(network, brute_mind(features, labels, regions), rtol=0, atol=1e-10)
    assert network[np.triu_indices(6, 1)].std() > 0.05  # the regions do differ


def test_mind_network_is_symmetric_with_zero_diagonal():
    features, labels = random_subject([80, 60, 70, 90, 50], d=4, seed=3)
    network = mind_network(features, labels, [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(network, network.T)
    np.testing.assert_array_equal(np.diag(network), 0)
    off = network[~np.eye(5, dtype=bool)]
    assert (off > 0).all() and (off <= 1).all()


def test_same_distributions_are_similar_and_distant_ones_are_not():
    draw = np.random.default_rng(7)
    features = draw.normal(size=(6 * 500, 3))
    labels = np.repeat(np.arange(6), 500)
    features[labels >= 3] += 20  # regions 3-5: the same distribution, 20 sd away from regions 0-2
    network = mind_network(features, labels, range(6))
    within = [network[a, b] for a in range(6) for b in range(a + 1, 6) if (a < 3) == (b < 3)]
    assert np.median(within) > 0.8 and min(within) > 0.5
    assert network[:3, 3:].max() < 0.1


def test_a_region_of_one_voxel_has_no_similarity():
    features, labels = random_subject([40, 1, 35, 30], seed=5)
    network = mind_network(features, labels, [1, 2, 3, 4, 42])  # 42: no voxel at all
    for region in (1, 4):
        assert np.isnan(network[region]).all() and np.isnan(network[:, region]).all()
    kept = [0, 2, 3]
    np.testing.assert_allclose(network[np.ix_(kept, kept)], brute_mind(features, labels, [1, 3, 4]), atol=1e-10)


def zscored(values):
    return (values - values.mean()) / values.std()


def test_subject_features():
    shape = (8, 9, 10)
    i, j, k = np.indices(shape).astype(float)
    atlas = np.zeros(shape, int)
    atlas[1:-1, 1:-1, 1:-1] = np.where(i[1:-1, 1:-1, 1:-1] < 4, 1, 2)  # inside: central differences only
    t1 = i**2 + 2 * j**2  # regions (i < 4, i >= 4) differ in mean: z-scored over the brain, not per region
    flair = np.sin(i + j) + k
    flair[3, 4, 5] = np.nan
    t1[5, 5, 5] = np.nan
    images = {"t1": t1, "flair": np.ma.masked_array(flair, mask=(i == 2) & (j == 2))}
    features, labels = subject_features(images, atlas, ["t1", "flair", "t1_gradient"])

    gradient = np.sqrt((2 * i) ** 2 + (4 * j) ** 2)  # of i^2 + 2 j^2 by central differences, exactly
    for axis in range(3):  # the NaN spoils the gradient of the neighbours along each axis
        for step in (-1, 1):
            neighbour = [5, 5, 5]
            neighbour[axis] += step
            gradient[tuple(neighbour)] = np.nan
    brain = (atlas > 0) & np.isfinite(t1) & np.isfinite(flair) & ~((i == 2) & (j == 2)) & np.isfinite(gradient)
    assert len(features) == brain.sum() < (atlas > 0).sum() - 8
    np.testing.assert_array_equal(labels, atlas[brain])
    np.testing.assert_allclose(features.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(features.std(0), 1)
    np.testing.assert_allclose(features[:, 0], zscored(t1[brain]))
    np.testing.assert_allclose(features[:, 1], zscored(flair[brain]))
    np.testing.assert_allclose(features[:, 2], zscored(gradient[brain]))
    assert abs(features[labels == 1, 0].mean() - features[labels == 2, 0].mean()) > 0.5

    with pytest.raises(ValueError, match=r"'dwi'.*available: flair, t1, flair_gradient, t1_gradient"):
        subject_features(images, atlas, ["t1", "dwi"])
    with pytest.raises(ValueError, match="constant.*: flat"):
        subject_features({**images, "flat": np.full(shape, 3.0)}, atlas, ["t1", "flat"])


def test_a_shard_job_writes_each_subjects_network_and_says_who_has_none(tmp_path):
    """Two subjects' preprocessed cubes (one without FLAIR) and a 4-region atlas on their grid:
    the first's row is its network's upper triangle, the second's is NaN, with the reason."""
    import nibabel as nib
    import pandas as pd

    from legibility.connectivity import vectorise
    from legibility.io import read_tsv

    draw = np.random.default_rng(0)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    atlas = np.zeros((12, 12, 12), np.int16)
    atlas[1:6, 1:6, 1:11], atlas[6:11, 1:6, 1:11], atlas[1:6, 6:11, 1:11], atlas[6:11, 6:11, 1:11] = 1, 2, 3, 4
    images = {}
    for subject, modalities in (("01", ("t1", "flair", "dwi")), ("02", ("t1", "dwi"))):
        for modality, suffix in zip(modalities, [{"t1": "T1w", "flair": "FLAIR", "dwi": "MD"}[m] for m in modalities]):
            data = (draw.normal(size=atlas.shape) + atlas * (1 + len(suffix))).astype(np.float32)
            images[subject, modality] = data
            nib.save(nib.Nifti1Image(data, affine), tmp_path / f"sub-{subject}_res-64_desc-preproc_{suffix}.nii.gz")
    table = pd.DataFrame([{"subject": s, "modality": m, "status": "ok"} for s, m in images])
    mind.run_shard(table, tmp_path, 64, nib.Nifti1Image(atlas, affine), ["t1", "flair", "dwi"], tmp_path / "m.npy", tmp_path / "m.tsv")
    rows, written = read_tsv(tmp_path / "m.tsv").set_index("subject"), np.load(tmp_path / "m.npy")
    features, labels = subject_features({m: images["01", m] for m in ("t1", "flair", "dwi")}, atlas, ["t1", "flair", "dwi"])
    assert written.shape == (2, 6)
    np.testing.assert_allclose(written[rows.loc["01", "row"]], vectorise(mind_network(features, labels, [1, 2, 3, 4])), rtol=1e-6)
    assert rows.loc["02", "status"] == "excluded" and "flair" in rows.loc["02", "reason"]
    assert np.isnan(written[rows.loc["02", "row"]]).all()
