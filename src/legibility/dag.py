"""What keeps the DAG of a large grid fast: Snakemake's costs per job that repeat the same work.

At UK Biobank scale a k-fold grid has thousands of training jobs, and a dry run is mostly
Snakemake's own work per job (`benchmarks/bench_dag_scale.py`). Three of its costs give the
same answer at every job; each is paid once here instead.
"""

import functools
import inspect

from snakemake.common import overwrite_function_params
from snakemake.resources import Resource
from snakemake.sourcecache import LocalSourceFile


def per_job(function):
    """Marks a function of wildcards that rules call for every job. Snakemake reads a function's
    signature at every call to see what to pass it; read once here, the thousands of training
    jobs of a k-fold grid skip that (a sixth of their dry run)."""
    overwrite_function_params(function, inspect.signature(function).parameters)
    return function


def trim_snakemake_overhead() -> None:
    """- Every resource of every job is evaluated through the bound method Resource.evaluate,
      whose signature Snakemake reads anew each time (a tenth of the dry run): read once.
    - Each job's script path is parsed as a URI three times, smart_open building a named-tuple
      class at each parse (a twentieth): parsed once per path.
    Both answers are unchanged (tests/test_dag.py)."""
    overwrite_function_params(Resource.evaluate, inspect.signature(Resource("probe", 0).evaluate).parameters)
    if not hasattr(LocalSourceFile.get_cache_path, "cache_info"):
        LocalSourceFile.get_cache_path = functools.cache(LocalSourceFile.get_cache_path)
