"""QC time per 1 mm T1 image: the whole check of one 182x218x182 .nii.gz, from the file.

Two images: a head (scalp and skull, noise in the background, as before brain extraction)
and the same brain extracted, each checked against deepbet's brain mask of the head (made once,
outside the timing: benchmarks/bench_skullstrip.py times it). Prints a final JSON line.
    python benchmarks/bench_qc.py [--repeats 5]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path
from statistics import median

import nibabel as nib
import numpy as np

from legibility import demo, qc, skullstrip
from legibility.config import validated


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    config = {"inputs": {"root": ".", "templates": {"t1": "{subject}"}},
              "phenotypes": {"path": ".", "variables": {"a": {"type": "continuous", "block": "constitutional"}}},
              "grid": [{"targets": ["a"], "input_sets": [["t1"]]}]}  # fmt: skip
    thresholds = validated(config)["qc"]
    results = {}
    settings = {**validated(config)["skullstrip"], "threads": 1}
    with tempfile.TemporaryDirectory() as folder:
        for name, unstripped in (("head", True), ("brain", False)):
            nib.save(demo.t1_1mm(unstripped=unstripped), Path(folder) / f"{name}.nii.gz")
        brain = skullstrip.run_shard({"bench": {"t1": f"{folder}/head.nii.gz"}}, settings, folder)["mask"][0]
        for name in ("head", "brain"):
            path = Path(folder) / f"{name}.nii.gz"
            verdict = qc.check_structural(path, thresholds, brain=brain)  # warm-up, and the verdict to report
            seconds = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                qc.check_structural(path, thresholds, brain=brain)
                seconds.append(time.perf_counter() - started)
            results[name] = {"seconds": round(median(seconds), 3), "status": verdict["status"],
                             "nonzero_fraction": round(float(np.mean(nib.load(path).get_fdata() > 0)), 3)}  # fmt: skip
    print(json.dumps({"image": "182x218x182 1 mm T1 .nii.gz", "repeats": args.repeats, **results,
                      "seconds_per_image": max(r["seconds"] for r in results.values())}))  # fmt: skip


if __name__ == "__main__":
    main()
