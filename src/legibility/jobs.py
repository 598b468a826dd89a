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
