"""The profiles: the README's cluster command sets no local limits, and the SLURM profile sends
image models to a GPU partition and everything else to a CPU partition."""

from types import SimpleNamespace

from conftest import ROOT

CLUSTER_COMMAND = "snakemake --profile profiles/slurm"  # the README's


def test_the_cluster_command_sets_no_local_limits(monkeypatch):
    """Snakemake also reads the workflow profile (profiles/default) beside --profile: neither may
    cap GPU jobs or take the submit host's cores, which would cap every job's threads."""
    from snakemake.cli import parse_args

    assert CLUSTER_COMMAND in (ROOT / "README.md").read_text().splitlines()
    monkeypatch.chdir(ROOT)
    _, args = parse_args(CLUSTER_COMMAND.split()[1:])
    assert "gpu" not in (args.resources or {}) and args.cores is None
    assert args.executor == "slurm" and args.jobs >= 50
    assert "cpus_per_task" not in args.default_resources and not args.set_threads  # threads drive cpus_per_task
    assert str(args.slurm_partition_config) == "profiles/slurm/partitions.yaml"


def test_the_partition_config_sends_image_models_to_gpus_and_the_rest_to_cpus():
    from snakemake_executor_plugin_slurm.partitions import get_best_partition, read_partition_file

    partitions = read_partition_file(ROOT / "profiles" / "slurm" / "partitions.yaml")
    log = SimpleNamespace(info=print, debug=print, warning=print)

    def job(**resources):
        return SimpleNamespace(name="train", threads=resources.pop("threads", 4), resources=SimpleNamespace(get=resources.get, **resources))

    assert get_best_partition(partitions, job(gpu=1, mem_mb=16000, runtime=720), log) == "gpu"
    assert get_best_partition(partitions, job(gpu=0, mem_mb=4000, runtime=120, threads=2), log) == "cpu"
    assert get_best_partition(partitions, job(mem_mb=4000, runtime=60, threads=1), log) == "cpu"
