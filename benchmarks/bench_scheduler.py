"""Snakemake's two built-in schedulers on the same study: its default (ilp, an integer programme
solved by CBC whenever more jobs are ready than cores are free) against greedy, which the
workflow profile (profiles/default) sets.

Side by side, one after the other on 2 cores: the small demo of tests/test_reruns.py (12
subjects, four models) from an empty folder. Prints the CPU seconds of each whole run (Snakemake,
its jobs and the solver), its wall time, and whether the two runs' results are the same files
(tests/test_reruns.py's comparison); final JSON line.
    python benchmarks/bench_scheduler.py
"""

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_reruns import differences, small_demo  # noqa: E402  (the tests' study and comparison)


def run(workdir: Path, scheduler: str) -> dict:
    small_demo(workdir)
    before, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    snakemake = str(Path(sys.executable).parent / "snakemake")
    subprocess.run([snakemake, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2", "--scheduler", scheduler],
                   check=True, capture_output=True)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"cpu_seconds": round(cpu, 1), "seconds": round(time.perf_counter() - wall, 1)}


def main():
    with tempfile.TemporaryDirectory() as folder:
        sides = {}
        for scheduler in ("ilp", "greedy"):
            sides[scheduler] = run(Path(folder) / scheduler, scheduler)
            print(scheduler, sides[scheduler], flush=True)
        same = differences(Path(folder) / "ilp", Path(folder) / "greedy") == []
    saved = 1 - sides["greedy"]["cpu_seconds"] / sides["ilp"]["cpu_seconds"]
    print(json.dumps({**sides, "same_outputs": same, "cpu_saved": round(saved, 3)}))


if __name__ == "__main__":
    main()
