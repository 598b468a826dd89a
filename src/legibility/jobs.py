"""What every job does: log to the rule's log file, and record where and with what it ran."""

import logging
import warnings


def log_to(path) -> None:
    logging.basicConfig(
        filename=path, level=logging.INFO, force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )  # fmt: skip
    logging.captureWarnings(True)
    warnings.simplefilter("default")


# glibc's malloc hands every freed buffer above a few MB back to the kernel and faults it in
# anew at the next allocation: a job that allocates image-sized arrays over and over (deepbet,
# resampling, training) spent a sixth of its CPU time in the kernel. Kept in the process
# (benchmarks/bench_malloc.py), the same outputs come quicker; a user's own settings win.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(512 << 20), "MALLOC_TOP_PAD_": str(64 << 20)}


def keep_freed_memory(environ) -> None:
    """Set glibc's allocator for the processes started with `environ` (the jobs: glibc reads
    these when a process starts)."""
    for name, value in MALLOC.items():
        environ.setdefault(name, value)


PACKAGES = ("legibility", "snakemake", "torch", "monai", "nibabel", "nilearn", "numpy", "pandas", "scikit-learn", "scipy")
SLURM_VARIABLES = ("SLURM_JOB_ID", "SLURM_JOB_PARTITION", "SLURM_GPUS_ON_NODE", "SLURM_CPUS_PER_TASK", "CUDA_VISIBLE_DEVICES")


def provenance() -> dict:
    """Where and with what a job ran: package versions, the workflow's git commit, the host and
    the scheduler's allocation (SLURM variables, visible GPUs)."""
    import os
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "packages": {name: installed(name) for name in PACKAGES},
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "host": platform.node(),
        "scheduler": {name: os.environ[name] for name in SLURM_VARIABLES if name in os.environ},
    }


def git_commit():
    """The workflow's git commit; None outside a git checkout, or without git."""
    import subprocess
    from pathlib import Path

    try:
        root = Path(__file__).resolve().parents[2]
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return commit.stdout.strip() if commit.returncode == 0 else None


def dataset_description(name: str) -> dict:
    """dataset_description.json of a BIDS derivative dataset made by this workflow."""
    from . import __version__

    generated_by = {"Name": "legibility", "Version": __version__}
    if commit := git_commit():
        generated_by["Description"] = f"git commit {commit}"
    return {"Name": name, "BIDSVersion": "1.10.0", "DatasetType": "derivative", "GeneratedBy": [generated_by]}
