"""Registration of a T1 to MNI152: time per subject, accuracy and memory.

The 1 mm MNI152 T1 that nilearn ships, moved into a subject's world by a known random affine
(rotation up to 15 degrees about a random axis, scales 0.85-1.15 per axis, translation up to
20 mm per axis) and sampled onto a 1 mm 182x218x182 grid, is registered back to the template
(affine, 12 parameters, the workflow's default levels, one thread), --subjects times with
different affines, each in a fresh process:
- seconds_per_subject: the median wall time of `register.to_mni` on the loaded image;
- error_mm: the mean, over subjects, of the mean distance between where the recovered and the
  known map send the voxels of the MNI152 brain mask;
- peak_rss_mb: the largest peak memory of one such process (its own VmHWM).
Prints a final JSON line.
    python benchmarks/bench_registration.py [--subjects 5]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

JOB = """
import json, sys, time
import nibabel as nib
import numpy as np
from scipy.spatial.transform import Rotation
from threadpoolctl import threadpool_limits
import torch

from legibility import register, resample, template

threadpool_limits(1)
torch.set_num_threads(1)
seed, folder = int(sys.argv[1]), sys.argv[2]
draw = np.random.default_rng(seed)
axis = draw.normal(size=3)
truth = np.eye(4)  # MNI world -> subject world
truth[:3, :3] = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.deg2rad(draw.uniform(0, 15))).as_matrix() @ np.diag(draw.uniform(0.85, 1.15, 3))
truth[:3, 3] = draw.uniform(-20, 20, 3)
mni = template.mni152(1)
affine = np.eye(4)
affine[:3, 3] = [-90.5, -126.5, -72.5]
subject = resample.resample(mni["t1"], mni["affine"], np.linalg.inv(truth) @ affine, (182, 218, 182))
path = f"{folder}/sub-{seed}_T1w.nii.gz"
nib.save(nib.Nifti1Image(subject, affine), path)
image = nib.load(path)
data = image.get_fdata(dtype=np.float32)
register.mni_target()  # the template, loaded once per job in the workflow too
started = time.perf_counter()
estimated, _ = register.to_mni(data, image.affine, seed=seed)
seconds = time.perf_counter() - started
world = nib.affines.apply_affine(mni["affine"], np.argwhere(mni["brain"]))
error = np.linalg.norm(nib.affines.apply_affine(estimated, world) - nib.affines.apply_affine(truth, world), axis=1).mean()
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
print(json.dumps({"seconds": seconds, "error_mm": float(error), "peak_rss_mb": peak}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=5)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(1, args.subjects + 1):
            out = subprocess.run([sys.executable, "-c", JOB, str(seed), folder], capture_output=True, text=True, check=True,
                                 cwd=Path(__file__).resolve().parents[1])  # fmt: skip
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps({"subject": seed, **{k: round(v, 3) for k, v in runs[-1].items()}}), flush=True)
    print(json.dumps({
        "seconds_per_subject": round(median(r["seconds"] for r in runs), 2),
        "error_mm": round(sum(r["error_mm"] for r in runs) / len(runs), 3),
        "max_error_mm": round(max(r["error_mm"] for r in runs), 3),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
        "subjects": len(runs),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
