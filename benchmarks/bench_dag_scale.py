"""Dry-run time and memory of the full workflow at UK Biobank scale.

For each N (1,000, 5,000 and 23,810 by default) a fake UK Biobank-style cohort: an empty
placeholder file for every modality of every subject (T1, FLAIR, DWI, connectome, under the
templates of config/reference_grid.yaml) and a phenotype table with every declared variable.
Then `snakemake -n` of config/reference_grid.yaml (the reference study's grid: 700 models,
each trained on 5 folds, 64 shards, every stage) in a fresh working directory: its wall time
(parse, input discovery, phenotype checks, DAG) and its peak memory (the process's own
ru_maxrss). Prints a final JSON line: n, seconds, peak_rss_mb and folds of the largest N, and
the figures per N.
    python benchmarks/bench_dag_scale.py [--sizes 1000 5000 23810] [--repeats 1] [--folds 5]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def fake_cohort(folder: Path, n: int, config: dict) -> dict:
    """Placeholder files and a phenotype table for n subjects; returns the config pointing at them."""
    subjects = [str(1000001 + i) for i in range(n)]  # UK Biobank eids
    templates = config["inputs"]["templates"]
    for subject in subjects:
        for template in templates.values():
            path = folder / "imaging" / template.format(subject=subject)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    draw = np.random.default_rng(n)
    values = {}
    for name, variable in config["phenotypes"]["variables"].items():
        levels = variable.get("levels")
        values[name] = draw.choice(levels, n) if levels else draw.normal(60, 8, n).round(1)
    pd.DataFrame({"eid": subjects, **values}).to_csv(folder / "phenotypes.tsv", sep="\t", index=False)
    config = {**config, "inputs": {**config["inputs"], "root": str(folder / "imaging")}}
    config["phenotypes"] = {**config["phenotypes"], "path": str(folder / "phenotypes.tsv")}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return config


def dry_run(folder: Path) -> tuple:
    """(seconds, peak RSS in MB, jobs) of one `snakemake -n` in `folder`."""
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(folder), "--configfile", str(folder / "config.yaml"),
               "--cores", "1", "-n", "--quiet", "rules"]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    out, err = process.stdout.read(), process.stderr.read()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"snakemake -n failed:\n{out[-2000:]}\n{err[-4000:]}")
    total = [line.split()[-1] for line in out.splitlines() if line.startswith("total")]
    return seconds, usage.ru_maxrss / 1024, int(total[0]) if total else None


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 23810])
    parser.add_argument("--repeats", type=int, default=1, help="dry runs per size (the fastest is reported)")
    parser.add_argument("--folds", type=int, default=5, help="k-fold cross-validation: training jobs per model")
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "config" / "reference_grid.yaml").read_text())
    config["split"] = {**config.get("split", {}), "scheme": "kfold", "folds": args.folds}
    per_n = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            fake_cohort(folder, n, config)
            runs = [dry_run(folder) for _ in range(args.repeats)]
        seconds, peak, jobs = min(runs)
        per_n.append({"n": n, "seconds": round(seconds, 2), "peak_rss_mb": round(peak, 1), "jobs": jobs})
        print(json.dumps(per_n[-1]), flush=True)
    largest, smallest = per_n[-1], per_n[0]
    print(json.dumps({
        "n": largest["n"], "seconds": largest["seconds"], "peak_rss_mb": largest["peak_rss_mb"], "folds": args.folds,
        # time per subject at the largest N over that at the smallest: <= 1 grows no faster than linearly
        "growth_vs_linear": round((largest["seconds"] / largest["n"]) / (smallest["seconds"] / smallest["n"]), 3),
        "per_n": per_n,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
