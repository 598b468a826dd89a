"""Brain extraction with deepbet: seconds per 1 mm T1, Dice against the true brain, peak memory.

Side by side on one CPU thread, each in a fresh process (so each peak RSS is its own):
- workflow: skullstrip.run_shard, what the brain_mask_shard rule runs (mask, intracranial
  volume, checks, sidecar), on files;
- workflow_160: the same with skullstrip.input_size 160 (the demo's), not deepbet's 256;
- deepbet: deepbet's own run_bet on the same files, writing the mask, as its README shows.
Images: the demo generator's 1 mm 182x218x182 T1 with scalp and skull (timed), and heads of the
demo cohort with scalp and skull (their true brain masks known): Dice of each mask with the
truth. Prints a final JSON line.
    python benchmarks/bench_skullstrip.py [--heads 6]
"""

import argparse
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
import resource
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np


def dice(a, b):
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def measure(side, folder, heads):
    import torch

    torch.set_num_threads(1)
    from legibility import skullstrip
    from legibility.config import validated

    folder = Path(folder)
    files = ["t1_1mm", *(f"head-{k}" for k in range(heads))]
    seconds, masks = {}, {}
    for name in files:
        path = folder / f"{name}.nii.gz"
        out = folder / side / name
        started = time.perf_counter()
        if side.startswith("workflow"):
            settings = {**validated(json.loads((folder / "config.json").read_text()))["skullstrip"], "threads": 1}
            settings["input_size"] = 160 if side == "workflow_160" else settings["input_size"]
            mask = skullstrip.run_shard({name: {"t1": str(path)}}, settings, out)["mask"][0]
        else:
            import deepbet

            out.mkdir(parents=True)
            mask = str(out / "mask.nii.gz")
            deepbet.run_bet([str(path)], mask_paths=[mask], threshold=0.5, no_gpu=True)
        seconds[name] = time.perf_counter() - started
        masks[name] = mask
    return {"seconds": seconds, "masks": masks, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--heads", type=int, default=6)
    args = parser.parse_args()
    from legibility import demo

    seed, n = 20240501, 120
    with tempfile.TemporaryDirectory() as folder:
        nib.save(demo.t1_1mm(unstripped=True), Path(folder) / "t1_1mm.nii.gz")
        truths = []
        for k, subject in enumerate(f"{i:03d}" for i in np.linspace(1, n, args.heads).astype(int)):
            head, brain = demo.with_true_brain(seed, n, subject, "t1")
            nib.save(head, Path(folder) / f"head-{k}.nii.gz")
            truths.append(np.asanyarray(brain.dataobj) > 0)
        config = {"inputs": {"root": ".", "templates": {"t1": "{subject}"}},
                  "phenotypes": {"path": ".", "variables": {"a": {"type": "continuous", "block": "constitutional"}}},
                  "grid": [{"targets": ["a"], "input_sets": [["t1"]]}]}  # fmt: skip
        (Path(folder) / "config.json").write_text(json.dumps(config))
        results = {}
        for side in ("workflow", "workflow_160", "deepbet"):
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:  # its own peak RSS
                result = pool.submit(measure, side, folder, args.heads).result()
            scores = [dice(np.asanyarray(nib.load(result["masks"][f"head-{k}"]).dataobj) > 0, truth) for k, truth in enumerate(truths)]
            results[side] = {
                "seconds_1mm": round(result["seconds"]["t1_1mm"], 2),
                "seconds_per_demo_head": round(float(np.mean([result["seconds"][f"head-{k}"] for k in range(args.heads)])), 2),
                "dice_min": round(min(scores), 4),
                "dice_mean": round(float(np.mean(scores)), 4),
                "peak_rss_mb": round(result["peak_rss_mb"]),
            }
    ours = results["workflow"]
    print(json.dumps({"image": "182x218x182 1 mm T1 with scalp, one thread", "heads": args.heads, **results,
                      "seconds_per_image": ours["seconds_1mm"], "dice_vs_truth": ours["dice_min"], "peak_rss_mb": ours["peak_rss_mb"]}))  # fmt: skip


if __name__ == "__main__":
    main()
