"""The configuration as the workflow sees it, for code that runs outside Snakemake."""

import copy
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def validated(config: dict) -> dict:
    """Validated against the schema, with its defaults filled in (as the Snakefile does)."""
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    return canonical_order(config)


def canonical_order(value):
    """Every mapping's keys in sorted order, in place. Snakemake compares rule parameters
    including key order, so this keeps a config whose keys were merely reordered from rerunning
    anything."""
    if isinstance(value, dict):
        items = sorted(value.items())
        value.clear()
        value.update((k, canonical_order(v)) for k, v in items)
    elif isinstance(value, list):
        value[:] = [canonical_order(v) for v in value]
    return value
