"""Reruns give the same bytes: a run killed mid-way (SIGKILL) and finished equals a run never
killed, and so does a run on a real SLURM, a one-node cluster on localhost offering two
(fake) GPUs, through the README's cluster profile: image models train side by side, each on
a GPU, and models that read no image go to the CPU partition.

`.ci/run` installs Debian's slurm-wlm and munge; where they cannot be installed (not root, no
package) the test is skipped, saying so. The cluster: munged on a private socket, slurmctld
and slurmd as root, proctrack/linuxproc and task/none (they work in a container), no
accounting database (so job states come from squeue), and plain files as the GPU devices.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, SNAKEMAKE, run_snakemake
from test_profiles import CLUSTER_COMMAND
from legibility.io import read_tsv

pytestmark = pytest.mark.workflow

ETC = Path("/etc/slurm")
SLURM_CONF = """\
ClusterName=legibility-test
SlurmctldHost=localhost
AuthType=auth/munge
AuthInfo=socket={d}/munge.sock
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
GresTypes=gpu
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=16000 Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "squeue") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"SLURM is not installed here (no {', '.join(missing)}): apt-get install slurm-wlm munge, as root, as .ci/run does")
    if os.geteuid() != 0:
        pytest.skip("a test SLURM cluster needs root (slurmd runs jobs as their users)")
    if (ETC / "slurm.conf").exists() and "legibility-test" not in (ETC / "slurm.conf").read_text():
        pytest.skip("this machine has its own SLURM configuration in /etc/slurm; the test leaves it alone")
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (d / sub).mkdir()
    for gpu in ("gpu0", "gpu1"):
        (d / gpu).touch()  # the fake GPU devices
    # in the default place: srun inside a job reads it from there (the job's environment is not ours)
    ETC.mkdir(exist_ok=True)
    # eight job slots even on two cores (config_overrides): the light jobs must not keep the two
    # image models from running side by side
    (ETC / "slurm.conf").write_text(SLURM_CONF.format(d=d, cpus=max(8, os.cpu_count())))
    (ETC / "gres.conf").write_text(f"NodeName=localhost Name=gpu File={d}/gpu[0-1]\n")
    subprocess.run(["munged", "--force", "--key-file=/etc/munge/munge.key", f"--socket={d}/munge.sock", f"--pid-file={d}/munged.pid",
                    f"--log-file={d}/munged.log", f"--seed-file={d}/munged.seed"], check=True)  # fmt: skip
    subprocess.run(["slurmctld", "-c"], check=True)
    subprocess.run(["slurmd", "-N", "localhost"], check=True)
    for _ in range(60):
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout
        if "idle" in state:
            break
        time.sleep(1)
    else:
        pytest.fail(f"the test cluster did not come up: {state}\n{(d / 'slurmctld.log').read_text()[-2000:]}")
    yield d
    subprocess.run(["scancel", "--user=root"])
    for daemon in ("slurmd", "slurmctld", "munged"):
        pid = d / f"{daemon}.pid"
        if pid.exists():
            subprocess.run(["kill", pid.read_text().strip()])
    for name in ("slurm.conf", "gres.conf"):
        (ETC / name).unlink(missing_ok=True)


def small_demo(workdir):
    """The demo, smaller: 12 subjects in 1 shard, T1 and FLAIR images only, 64³ only, three
    models: two image models, which ask for a GPU, and a metadata model, which does not. The two
    image models read the same inputs (one target's split, the same images), so they are ready at
    the same moment: only a limit on GPUs could keep them from training side by side. Jobs ask
    for what the test node has (2 GB for a training job)."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["demo"]["n_subjects"] = 12
    for series in ("dwi", "bold", "confounds"):  # no connectivity (four jobs fewer), no DWI to register
        config["inputs"]["templates"].pop(series)
    config["demo"]["unstripped"] = 1
    config["shards"] = 1  # on SLURM, every job is a submission: the fewer the quicker
    config["confounds"] = {"variables": []}  # no comparators: two jobs fewer
    config["preprocess"] = {"resolutions": [64]}
    config["augment"]["copies"] = 1
    small = {"threads": 1, "mem_mb": 2000, "runtime": 30}
    config["training"].update(epochs=2, gpu=1, **small, without_images=small)
    config["skullstrip"].update(mem_mb=2000, runtime=30)
    config["grid"] = [{"targets": ["sex"], "input_sets": [["t1"], ["flair"], ["serology"]]}]
    shutil.copytree(ROOT / "config", workdir / "config")
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


TIMING = {"wall_seconds", "provenance"}  # where and how long: the only fields that may differ
# the grid's analyses, which only read its tables: the killed run leaves them out (nothing kills
# them; tests/test_workflow.py checks them)
ANALYSES = ("domain_effects", "target_network", "training_cost", "mean_images", "dashboard")


def differences(first, second) -> list:
    """Files under results/ whose content differs between two runs (timing fields and the
    grid's analyses aside)."""
    def files(root):  # a killed write's .tmp* file never looks complete, and is not a result
        return {p.relative_to(root) for p in (root / "results").rglob("*")
                if p.is_file() and not {"benchmarks", "analysis"} & set(p.parts) and p.name != "dashboard.html"
                and not p.name.startswith(".tmp")}  # fmt: skip

    names = files(first) | files(second)
    differ = sorted(str(n) for n in names ^ (files(first) & files(second)))
    for name in sorted(files(first) & files(second)):
        a, b = (first / name).read_bytes(), (second / name).read_bytes()
        if a == b:
            continue
        if name.name == "metrics.json":  # how long each epoch took aside
            a, b = ({k: v for k, v in json.loads(x).items() if k not in TIMING} for x in (a, b))
            for summary in (a, b):
                summary["history"] = [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in summary.get("history", [])]
        elif name.name == "performance.tsv":  # .equals: NaN equals NaN
            a, b = (read_tsv(root / name).drop(columns=["wall_seconds"]) for root in (first, second))
            a, b = a.equals(b), True
        elif name.suffix == ".npz":  # zip members carry their write time
            a, b = (dict(np.load(root / name)) for root in (first, second))
            a, b = {k: v.tobytes() for k, v in a.items()}, {k: v.tobytes() for k, v in b.items()}
        if a != b:
            differ.append(str(name))
    return differ


def on_slurm(workdir):
    """The small demo through the README's cluster profile, on the test cluster."""
    small_demo(workdir)
    # the README's cluster command; partitions come from profiles/slurm/partitions.yaml (the
    # test cluster's are named cpu and gpu, as there)
    assert CLUSTER_COMMAND in (ROOT / "README.md").read_text().splitlines()
    run_snakemake(
        workdir, "--profile", str(ROOT / "profiles" / "slurm"),
        # a test cluster: no accounts, no accounting database, quick status checks
        "--slurm-no-account", "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
        "--seconds-between-status-checks", "2", "--latency-wait", "5",
        # the test node has 16 GB and 8 CPUs: ask for less than the profile's defaults
        "--default-resources", "mem_mb=1000", "runtime=30", "--set-resources", "demo_cohort:mem_mb=2000", "--set-threads", "demo_cohort=2",
        cores=None,
    )  # fmt: skip
    return workdir


@pytest.fixture(scope="module")
def reference(request, tmp_path_factory):
    """A run never killed: on the test cluster where there is one (the killed local run is then
    compared with it, and the cluster's run with a local one), else locally. Two runs of the
    small demo, not three: each costs minutes."""
    workdir = tmp_path_factory.mktemp("reference")
    try:
        request.getfixturevalue("cluster")
    except pytest.skip.Exception:
        small_demo(workdir)
        run_snakemake(workdir)
        return workdir
    return on_slurm(workdir)


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A clean run from an empty folder, SIGKILLed twice (mid-resampling and mid-training), each
    time leaving no partial file, and finished."""
    workdir = tmp_path_factory.mktemp("killed")
    small_demo(workdir)
    kill_when(workdir, "logs/preprocess/shard-*.log", "preprocessed sub-")  # mid-resampling
    assert_no_partial_file(workdir)
    run_snakemake(workdir, "--unlock")  # a killed Snakemake leaves its lock, as after a power loss
    kill_when(workdir, "logs/train/sex__t1__64/holdout.log", "epoch 1/")  # mid-training (the rerun resumes)
    assert_no_partial_file(workdir)
    assert not (workdir / "results" / "models" / "sex__t1__64" / "holdout" / "metrics.json").exists()
    run_snakemake(workdir, "--unlock")
    run_snakemake(workdir, "--omit-from", *ANALYSES)  # the default profile reruns incomplete jobs
    return workdir


def test_the_demo_runs_through_the_slurm_profile_and_equals_a_local_run(cluster, reference, killed_run):
    scheduler = {m: json.loads((reference / "results" / "models" / m / "holdout" / "metrics.json").read_text())["provenance"]["scheduler"]
                 for m in ("sex__t1__64", "sex__flair__64", "sex__serology")}  # fmt: skip
    for model in ("sex__t1__64", "sex__flair__64"):  # image models: a GPU each, in the GPU partition
        assert scheduler[model].get("SLURM_GPUS_ON_NODE") == "1" and scheduler[model]["SLURM_JOB_PARTITION"] == "gpu"
    assert "SLURM_GPUS_ON_NODE" not in scheduler["sex__serology"] and scheduler["sex__serology"]["SLURM_JOB_PARTITION"] == "cpu"  # no GPU
    # no global GPU limit: Snakemake sent both image models to the cluster before either ended (a
    # limit of one GPU holds the second back until the first is done; how long each then trains
    # is the cluster's business, and too short here to be sure to overlap)
    log = sorted((reference / ".snakemake" / "log").glob("*.snakemake.log"))[-1].read_text()
    assert submitted_before_either_finished(log, {"sex__t1__64", "sex__flair__64"}), "an image model waited for the other"
    assert differences(killed_run, reference) == []  # the same results as a local run, to the byte


def submitted_before_either_finished(log: str, models: set) -> bool:
    """Whether Snakemake's log shows every train job of `models` submitted before any of them
    finished."""
    ids, current, submitted = {}, None, set()
    for line in (line.strip() for line in log.splitlines()):
        if line.startswith("jobid: "):
            current = line.split()[1]
        elif line.startswith("wildcards: model=") and (model := line.split("model=")[1].split(",")[0]) in models:
            ids[current] = model
        elif line.startswith("Job ") and "has been submitted" in line and line.split()[1] in ids:
            submitted.add(line.split()[1])
        elif line.startswith("Finished jobid: ") and line.split()[2] in ids:
            return submitted == set(ids) and set(ids.values()) == models
    return False


def kill_when(workdir, log_glob, text, timeout=600):
    """Start the workflow, SIGKILL it and every job once a log matching `log_glob` shows `text`."""
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if any(text in log.read_text(errors="ignore") for log in workdir.glob(log_glob)):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.2)
    pytest.fail(f"the workflow ended or timed out before any {log_glob} showed {text!r}")


def assert_no_partial_file(workdir):
    """Every file at its final name is whole (writes go to .tmp* names, renamed when complete)."""
    import nibabel as nib

    for path in (workdir / "results").rglob("*"):
        if not path.is_file() or path.name.startswith(".tmp"):
            continue
        if path.suffix == ".npy":
            np.load(path, mmap_mode="r")
        elif path.name.endswith(".nii.gz"):
            nib.load(path).get_fdata()
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".tsv":
            read_tsv(path)


def test_jobs_killed_mid_way_leave_nothing_partial_and_the_rerun_gives_the_same_bytes(killed_run, reference):
    """The killed and finished run (its fixture checks that no kill left a partial file) equals
    a run never killed, to the byte."""
    assert differences(reference, killed_run) == []
