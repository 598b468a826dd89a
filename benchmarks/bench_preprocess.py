"""Preprocessing at I/O speed: one 1 mm T1 .nii.gz to 128³ and 64³ on the MNI grid, beside
nibabel and nilearn.

On a realistic 1 mm 182x218x182 T1 on the MNI grid (a head as scanned: noise fills the
background, so the file is not mostly zeros), single-threaded (BLAS, OpenMP and torch's own
pool), medians of --repeats runs, in one run:
- load_s: nibabel reading the file into a float32 array (get_fdata), as our code reads it;
- ours_s: legibility from the file to both cubes (read, brain statistics, one trilinear
  resample onto the 128³ MNI grid, clamp, z-score, 2x2x2 mean to 64³);
- nilearn_s: the same from the file with nilearn's resample_img (continuous interpolation,
  nilearn's choice for images) onto the MNI grid of each resolution, and the same clamp and
  z-score;
- ratio_vs_load = ours / load, speedup_vs_nilearn = nilearn / ours;
- oblique: the same image tilted 10 degrees in its header (the general affine path, torch's
  grid_sample), over the read of that file;
- registered_ratio_vs_load: the same file through a fixed 12-parameter map from MNI to the
  image (to_image, as registration gives: a 10 degree rotation about a tilted axis, scales
  0.9-1.1, a small shear, a 10 mm translation; the general affine path) onto the MNI grid at
  both resolutions, over the read of the file;
- the peak memory of one preprocessing job (3 images into packed 128³ and 64³ arrays and NIfTI
  files).
Prints a final JSON line.
    python benchmarks/bench_preprocess.py [--repeats 5]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from statistics import median

import nibabel as nib
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from legibility import demo, resample

SETTINGS = {"resolutions": [128, 64], "fov_mm": 192.0, "clamp_percentiles": [0.5, 99.5], "normalise": "zscore"}
JOB = """
import sys
import pandas as pd
from legibility import resample
path, out = sys.argv[1], sys.argv[2]
images = {"01": {m: path for m in ("t1", "flair", "dwi")}}
qc = pd.DataFrame({"subject": "01", "modality": ["t1", "flair", "dwi"], "status": "pass"})
settings = {"resolutions": [128, 64], "fov_mm": 192.0, "clamp_percentiles": [0.5, 99.5], "normalise": "zscore"}
resample.run_shard(images, qc, settings, {128: out + "/p128.npy", 64: out + "/p64.npy"}, out + "/table.tsv", out + "/nifti")
# VmHWM: this process's own peak (ru_maxrss would include the parent's, from before exec)
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024)
"""


def registration():
    """A fixed 12-parameter map from MNI world to the image's world, as registration gives:
    10 degrees about a tilted axis, scales of 0.9-1.1, a small shear, a 10 mm translation."""
    axis = np.array([0.3, 1.0, 0.5]) / np.linalg.norm([0.3, 1.0, 0.5])
    angle = np.deg2rad(10)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross  # Rodrigues
    shear = np.array([[1, 0.04, 0], [0, 1, 0.03], [0, 0, 1]])
    to_image = np.eye(4)
    to_image[:3, :3] = rotation @ shear @ np.diag([1.08, 0.93, 1.02])
    to_image[:3, 3] = [6.0, -7.0, 5.0]
    return to_image


TO_IMAGE = registration()


def load(path):
    return nib.load(path).get_fdata(dtype=np.float32)


def ours(path, to_image=None):
    image = nib.load(path)
    return resample.preprocess(image.get_fdata(dtype=np.float32), image.affine, SETTINGS["resolutions"],
                               SETTINGS["fov_mm"], SETTINGS["clamp_percentiles"], SETTINGS["normalise"], to_image)  # fmt: skip


def registered(path):
    return ours(path, TO_IMAGE)


def with_nilearn(path):
    from nilearn.image import resample_img

    warnings.filterwarnings("ignore", message="Casting data from")  # nilearn notes its float cast

    image = nib.load(path)
    data = image.get_fdata()  # nibabel keeps it: resample_img reuses this array
    stats = resample.brain_statistics(data, image.affine, SETTINGS["clamp_percentiles"], SETTINGS["fov_mm"])
    cubes = {}
    for size in SETTINGS["resolutions"]:
        grid = resample.mni_grid(size, SETTINGS["fov_mm"])
        out = resample_img(image, target_affine=grid, target_shape=(size,) * 3, interpolation="continuous",
                           force_resample=True, copy_header=True).get_fdata(dtype=np.float32)  # fmt: skip
        cubes[size] = resample.normalise(out, out > stats["threshold"], stats["clamp"], SETTINGS["normalise"])
    return cubes


def timed(function, path, repeats):
    function(path)  # warm-up: imports, caches
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function(path)
        seconds.append(time.perf_counter() - started)
    return median(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)  # torch's own pool (the oblique path) too: threadpoolctl may not reach it
    with tempfile.TemporaryDirectory() as folder, threadpool_limits(1):
        path, tilted = Path(folder) / "t1.nii.gz", Path(folder) / "t1_oblique.nii.gz"
        image = demo.t1_1mm(unstripped=True)
        nib.save(image, path)
        rotation = np.eye(4)
        rotation[1:3, 1:3] = [[np.cos(0.17), -np.sin(0.17)], [np.sin(0.17), np.cos(0.17)]]
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj), rotation @ image.affine), tilted)
        load_s, ours_s = timed(load, path, args.repeats), timed(ours, path, args.repeats)
        nilearn_s = timed(with_nilearn, path, max(1, args.repeats // 2))
        oblique_load_s, oblique_s = timed(load, tilted, args.repeats), timed(ours, tilted, args.repeats)
        registered_s = timed(registered, path, args.repeats)
        (Path(folder) / "job").mkdir()
        job = subprocess.run([sys.executable, "-c", JOB, str(path), str(Path(folder) / "job")], capture_output=True, text=True, check=True)
    print(json.dumps({
        "image": "182x218x182 1 mm T1 .nii.gz, int16, head with background noise",
        "repeats": args.repeats,
        "load_s": round(load_s, 4),
        "ours_s": round(ours_s, 4),
        "nilearn_s": round(nilearn_s, 4),
        "ratio_vs_load": round(ours_s / load_s, 3),
        "speedup_vs_nilearn": round(nilearn_s / ours_s, 2),
        "oblique_ours_s": round(oblique_s, 4),
        "oblique_ratio_vs_load": round(oblique_s / oblique_load_s, 3),
        "registered_ratio_vs_load": round(registered_s / load_s, 3),
        "job_peak_rss_mb": round(float(job.stdout.split()[-1]), 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
