import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from legibility import jobs
from legibility.config import validated  # noqa: F401  (tests import it from here)

# the allocator settings of the workflow's jobs (legibility.jobs.MALLOC) for the test workers
# too, which pytest-xdist starts after this file is read: the same results, less time in the kernel
jobs.keep_freed_memory(os.environ)
# Two workers share the cores, each with workflows and torch threads of its own: OpenMP threads
# waiting for work sleep instead of spinning, which took the cores from the other worker's
# jobs (deepbet on 2 threads beside another such job: 4.7 CPU-s a head spinning, 2.1 asleep).
# How threads wait changes no result.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
# Files whose workflow runs take minutes go first. With two workers (pyproject's addopts) each
# starts with two files: the first takes the scaled-down demo's run and a quick file, the second
# the cluster and kill tests and the bad-input study, and whichever is free takes the next.
FIRST = ["test_workflow.py", "test_reruns.py", "test_install.py", "test_bad_inputs.py", "test_own_data.py", "test_connectomes.py"]


def pytest_addoption(parser):
    parser.addoption("--demo-results", metavar="DIR", help="the folder of a finished `make demo`: tests/test_demo_claims.py checks the README's claims on it (make demo-check)")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's order kept


def pytest_runtest_setup(item):
    # A worker busy with any other file (and the workflows it starts) yields the cores to the
    # scaled-down demo's run, which most of its file's tests wait on (the cluster tests beside
    # it mostly wait on their cluster)
    if item.path.name != FIRST[0] and os.getpriority(os.PRIO_PROCESS, 0) < 10:
        os.nice(10 - os.getpriority(os.PRIO_PROCESS, 0))


def run_snakemake(workdir, *args, configfile=None, check=True, cores="2"):
    """The real snakemake CLI on this repository's Snakefile, in `workdir`, on 2 cores (or
    `cores=None`: none given, as on a cluster)."""
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *(["--cores", cores] if cores else []), *args]
    if configfile:
        command += ["--configfile", str(configfile)]
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def planned_jobs(workdir, configfile=None) -> dict:
    """What a dry run would do: {rule: set of its jobs' wildcard values}. Snakemake's API in this
    process, which has Snakemake loaded already (a dry run from the command line spends most of
    its 3.5 s loading it); the jobs come from its log records, as a logger plugin reads them. The
    workflow profile (profiles/default) is not read: none of its settings changes a plan here."""
    import logging

    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings
    from snakemake_interface_logger_plugins.common import LogEvent

    jobs = {}

    class Planned(logging.Handler):
        def emit(self, record):
            if getattr(record, "event", None) == LogEvent.JOB_INFO:
                wildcards = ", ".join(f"{k}={v}" for k, v in (record.wildcards or {}).items())
                jobs.setdefault(record.rule_name, set()).update([wildcards] if wildcards else [])

    logger, handler = logging.getLogger("snakemake"), Planned()
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL}, dryrun=True)) as api:
        logger.addHandler(handler)
        try:
            workflow = api.workflow(ResourceSettings(cores=2), ConfigSettings(configfiles=[Path(configfile)] if configfile else []),
                                    snakefile=ROOT / "Snakefile", workdir=Path(workdir))  # fmt: skip
            workflow.dag().execute_workflow(pseudo_executor="dryrun")
        finally:
            logger.removeHandler(handler)
    return jobs


@pytest.fixture
def demo_config():
    return validated(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))


def brain_image(affine=None, shape=(72, 88, 72), radius=(60, 75, 58), value=500.0, seed=0):
    """An ellipsoidal 'brain' (2.5 mm voxels by default) with some texture."""
    affine = np.diag([2.5, 2.5, 2.5, 1.0]) if affine is None else affine
    grid = np.indices(shape, dtype=float)
    centre = (np.array(shape) - 1) / 2
    inside = sum(((g - c) * 2.5 / r) ** 2 for g, c, r in zip(grid, centre, radius)) <= 1
    texture = 1 + 0.2 * np.sin(grid[0] / 3) * np.cos(grid[1] / 4)
    data = np.where(inside, value * texture + np.random.default_rng(seed).normal(0, 10, shape), 0)
    return nib.Nifti1Image(data.astype(np.float32), affine)


@pytest.fixture
def tmp_image(tmp_path):
    def write(image, name="image.nii.gz"):
        path = tmp_path / name
        nib.save(image, path)
        return path

    return write
