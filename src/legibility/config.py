"""The configuration as the workflow sees it, for code that runs outside Snakemake."""

import copy
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def validated(config: dict) -> dict:
    """Validated against the schema, with its defaults filled in (as the Snakefile does)."""
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    return config
