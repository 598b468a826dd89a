"""glibc's allocator as jobs run it: its defaults against the settings every job gets
(legibility.jobs.MALLOC, set by workflow/rules/common.smk).

Side by side, each in a fresh process on one CPU thread, on the same files: what the
brain_mask_shard rule runs (deepbet's masks of demo heads, skullstrip.run_shard at the demo's
160³), then a few training steps of the demo's image network. Prints CPU seconds (user and
kernel), page faults, peak memory, and whether the outputs are the same to the bit; final JSON line.
    python benchmarks/bench_malloc.py [--heads 8]
"""

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def job(folder: Path, heads: int) -> dict:
    """One side's work, in this process: its CPU time, faults, memory and an output digest."""
    import torch
    import yaml

    from legibility import skullstrip
    from legibility.config import validated
    from legibility.models import ImageEncoder

    torch.set_num_threads(1)
    defaults = validated(yaml.safe_load((Path(__file__).parents[1] / "config" / "bids.yaml").read_text()))["skullstrip"]
    settings = {**defaults, "input_size": 160, "threads": 1}
    start, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    table = skullstrip.run_shard({f"{k:03d}": {"t1": str(folder / f"head-{k}.nii.gz")} for k in range(heads)}, settings, folder / f"masks-{os.getpid()}")
    digest = hashlib.sha256(table.drop(columns=["mask"]).to_csv().encode())
    for mask in sorted((folder / f"masks-{os.getpid()}").rglob("*.nii.gz")):
        digest.update(mask.read_bytes())
    torch.manual_seed(0)
    network = ImageEncoder(3, [8, 16, 32, 64, 64], 64)
    optimiser, batch = torch.optim.AdamW(network.parameters(), 1e-3), torch.randn(8, 3, 64, 64, 64)
    for _ in range(10):
        optimiser.zero_grad()
        network(batch).square().mean().backward()
        optimiser.step()
    digest.update(b"".join(p.detach().numpy().tobytes() for p in network.parameters()))
    end = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": round(time.perf_counter() - wall, 2), "user_s": round(end.ru_utime - start.ru_utime, 2),
        "kernel_s": round(end.ru_stime - start.ru_stime, 2), "page_faults": end.ru_minflt - start.ru_minflt,
        "peak_rss_mb": round(end.ru_maxrss / 1024), "digest": digest.hexdigest(),
    }  # fmt: skip


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--job", help=argparse.SUPPRESS)  # the child: a folder of heads
    args = parser.parse_args()
    if args.job:
        print(json.dumps(job(Path(args.job), args.heads)))
        return
    import nibabel as nib

    from legibility import demo
    from legibility.jobs import MALLOC

    with tempfile.TemporaryDirectory() as folder:
        for k in range(args.heads):
            image, _ = demo.with_true_brain(20240501, 2 * args.heads, f"{k + 1:03d}", "t1")
            nib.save(image, Path(folder) / f"head-{k}.nii.gz")
        plain = {k: v for k, v in os.environ.items() if k not in MALLOC}
        sides = {}
        for side, environ in (("glibc_defaults", plain), ("workflow", plain | MALLOC)):
            run = subprocess.run([sys.executable, __file__, "--heads", str(args.heads), "--job", folder], env=environ, capture_output=True, text=True, check=True)
            sides[side] = json.loads(run.stdout.splitlines()[-1])
            print(side, sides[side], flush=True)
    same = sides["glibc_defaults"].pop("digest") == sides["workflow"].pop("digest")
    cpu = {side: s["user_s"] + s["kernel_s"] for side, s in sides.items()}
    print(json.dumps({**sides, "same_outputs": same, "cpu_saved": round(1 - cpu["workflow"] / cpu["glibc_defaults"], 3)}))


if __name__ == "__main__":
    main()
