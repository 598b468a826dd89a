"""MIND network time for one subject: 100 regions of about 2,000 voxels, 3 features, on one core.

The subject is synthetic: each region draws its voxels' three intensities from a normal distribution
of its own (region-dependent means and spreads), rounded to integers as int16 images are, so voxels
share values (duplicated points, which the estimator must drop), then z-scored across the brain as
mind.subject_features does. Times mind.mind_network (median of 3 runs, 1 if a run takes over 10 s).
Prints a final JSON line.
    python benchmarks/bench_mind.py
"""

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"  # before numpy is imported, so its thread pools start with one thread
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import json  # noqa: E402
import time  # noqa: E402
from statistics import median  # noqa: E402

import numpy as np  # noqa: E402

from legibility import mind  # noqa: E402

REGIONS, VOXELS, FEATURES = 100, 2000, 3


def make_subject():
    draw = np.random.default_rng(0)
    sizes = draw.integers(int(VOXELS * 0.9), int(VOXELS * 1.1) + 1, REGIONS)
    labels = np.repeat(np.arange(1, REGIONS + 1), sizes)
    means = draw.normal([600, 400, 900], 15, (REGIONS, FEATURES))  # T1-, FLAIR-, DWI-like intensities
    spreads = draw.uniform(5, 25, (REGIONS, FEATURES))
    intensities = np.round(draw.normal(means[labels - 1], spreads[labels - 1]))  # integer, like int16 images
    features = (intensities - intensities.mean(0)) / intensities.std(0)
    order = draw.permutation(len(labels))  # voxels in no particular order, as from an image
    return features[order], labels[order]


def main():
    features, labels = make_subject()
    regions = np.arange(1, REGIONS + 1)
    seconds, network = [], None
    while len(seconds) < (3 if not seconds or seconds[0] <= 10 else 1):
        started = time.perf_counter()
        network = mind.mind_network(features, labels, regions)
        seconds.append(time.perf_counter() - started)
    duplicated = 1 - len(np.unique(np.column_stack([labels, features]), axis=0)) / len(labels)
    off_diagonal = network[~np.eye(REGIONS, dtype=bool)]
    print(json.dumps({
        "seconds": round(median(seconds), 3), "runs": len(seconds), "regions": REGIONS,
        "voxels_per_region": round(len(labels) / REGIONS), "features": FEATURES, "cores": len(os.sched_getaffinity(0)),
        "duplicated_voxel_fraction": round(duplicated, 3),
        "mind_min": round(float(off_diagonal.min()), 4), "mind_median": round(float(np.median(off_diagonal)), 4),
        "mind_max": round(float(off_diagonal.max()), 4),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
