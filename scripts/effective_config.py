"""The run's effective configuration: the user's config file (or the demo's), plus the schema's
defaults for everything it leaves out."""

import yaml

from legibility import jobs
from legibility.io import atomic_path

jobs.log_to(snakemake.log[0])
with atomic_path(snakemake.output[0]) as tmp:
    tmp.write_text(yaml.safe_dump(dict(snakemake.params.config), sort_keys=False))
