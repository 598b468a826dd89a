"""QC time per 1 mm T1 image: the whole check of one 182x218x182 .nii.gz, from the file.

Two images: a head (scalp and skull, noise in the background, as before brain extraction)
and the same brain extracted. Prints a final JSON line.
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

from legibility import demo, qc
from legibility.config import validated


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    thresholds = validated({"inputs": {"root": ".", "templates": {"t1": "{subject}"}},
                            "phenotypes": {"path": ".", "variables": {"a": {"type": "continuous", "block": "constitutional"}}},
                            "grid": [{"targets": ["a"], "input_sets": [["t1"]]}]})["qc"]  # fmt: skip
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, unstripped in (("head", True), ("brain", False)):
            path = Path(folder) / f"{name}.nii.gz"
            nib.save(demo.t1_1mm(unstripped=unstripped), path)
            verdict = qc.check_structural(path, thresholds)  # warm-up, and the verdict to report
            seconds = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                qc.check_structural(path, thresholds)
                seconds.append(time.perf_counter() - started)
            results[name] = {"seconds": round(median(seconds), 3), "status": verdict["status"],
                             "nonzero_fraction": round(float(np.mean(nib.load(path).get_fdata() > 0)), 3)}  # fmt: skip
    print(json.dumps({"image": "182x218x182 1 mm T1 .nii.gz", "repeats": args.repeats, **results,
                      "seconds_per_image": max(r["seconds"] for r in results.values())}))  # fmt: skip


if __name__ == "__main__":
    main()
