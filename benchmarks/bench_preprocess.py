"""Preprocessing at I/O speed: one 1 mm T1 .nii.gz to 128³ and 64³, beside nibabel and nilearn.

On a realistic 1 mm 182x218x182 T1 (a head as scanned: noise fills the background, so the file
is not mostly zeros), single-threaded, medians of --repeats runs, in one run:
- load_s: nibabel reading the file into a float32 array (get_fdata), as our code reads it;
- ours_s: legibility from the file to both cubes (read, brain statistics, one trilinear
  resample onto 128³, clamp, z-score, 2x2x2 mean to 64³);
- nilearn_s: the same from the file with nilearn's resample_img (continuous interpolation,
  nilearn's choice for images) for each resolution, and the same clamp and z-score;
- ratio_vs_load = ours / load, speedup_vs_nilearn = nilearn / ours;
- the same image tilted 10 degrees (oblique: the general affine path), and the peak memory of
  one preprocessing job (3 images into packed 128³ and 64³ arrays and NIfTI files).
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


def load(path):
    return nib.load(path).get_fdata(dtype=np.float32)


def ours(path):
    image = nib.load(path)
    return resample.preprocess(image.get_fdata(dtype=np.float32), image.affine, SETTINGS["resolutions"],
                               SETTINGS["fov_mm"], SETTINGS["clamp_percentiles"], SETTINGS["normalise"])  # fmt: skip


def with_nilearn(path):
    from nilearn.image import resample_img

    warnings.filterwarnings("ignore", message="Casting data from")  # nilearn notes its float cast

    image = nib.load(path)
    data = image.get_fdata()  # nibabel keeps it: resample_img reuses this array
    stats = resample.brain_statistics(data, image.affine, SETTINGS["clamp_percentiles"], SETTINGS["fov_mm"])
    cubes = {}
    for size in SETTINGS["resolutions"]:
        grid = resample.brain_grid(stats["centre_mm"], size, SETTINGS["fov_mm"])
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
        "job_peak_rss_mb": round(float(job.stdout.split()[-1]), 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
