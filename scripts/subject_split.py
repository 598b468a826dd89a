"""Write the subject split (drawn, stratified, when the workflow was parsed)."""

import logging

import pandas as pd

from legibility import jobs
from legibility.io import write_tsv

jobs.log_to(snakemake.log[0])
split = pd.DataFrame(snakemake.params.split)
logging.info("%d subjects: %s", len(split), split["split"].value_counts().to_dict())
write_tsv(snakemake.output[0], split)
