"""Snakemake's per-job costs paid once (legibility.dag): the answers Snakemake gets are unchanged."""

import inspect

from snakemake.common import get_function_params, get_input_function_aux_params
from snakemake.resources import Resource
from snakemake.sourcecache import LocalSourceFile

from legibility.dag import per_job, trim_snakemake_overhead


def test_resource_evaluation_sees_the_signature_inspect_reads():
    resource = Resource("gpu", lambda wildcards, attempt: attempt)
    read_by_inspect = inspect.signature(resource.evaluate).parameters
    trim_snakemake_overhead()
    assert dict(get_function_params(resource.evaluate)) == dict(read_by_inspect)
    candidates = {"input": [], "attempt": 2, "threads": 4, "rulename": "train"}
    assert get_input_function_aux_params(resource.evaluate, candidates) == candidates  # **kwargs: all passed on
    assert resource.evaluate(None, **candidates).value == 2


def test_a_script_path_parses_as_before(tmp_path):
    script = LocalSourceFile(str(tmp_path / "scripts" / "train.py"))
    trim_snakemake_overhead()
    trim_snakemake_overhead()  # twice: wrapped once
    assert LocalSourceFile.get_cache_path.__wrapped__(script) == script.get_cache_path() == LocalSourceFile(script.path).get_cache_path()
    assert not hasattr(LocalSourceFile.get_cache_path.__wrapped__, "cache_info")
    assert script.get_cache_path() != LocalSourceFile(str(tmp_path / "other.py")).get_cache_path()


def test_a_per_job_function_keeps_its_parameters():
    @per_job
    def inputs(wildcards, attempt):
        return attempt

    assert list(get_function_params(inputs)) == ["wildcards", "attempt"]


def test_parsing_the_snakefile_loads_neither_torch_nor_scikit_learn_nor_scipy_ndimage():
    """Every Snakemake run parses the Snakefile: a dry run, and each job a cluster runs (twice:
    its batch script and its step). What common.smk imports from the package must leave torch
    and scikit-learn (3 s of imports), and scipy.ndimage (a third of a second), to the jobs that use them."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    common = (Path(__file__).resolve().parents[1] / "workflow" / "rules" / "common.smk").read_text()
    imports = "\n".join(line for line in common.splitlines() if re.match(r"from legibility[ .]", line))
    assert "predict" in imports and "connectivity" in imports
    check = f"import sys\n{imports}\nprint(sorted(m for m in ('torch', 'sklearn', 'monai', 'scipy.ndimage') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout.strip() == "[]"
