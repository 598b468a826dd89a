"""Concatenate TSV tables with the same columns."""

import pandas as pd

from legibility import jobs
from legibility.io import read_tsv, write_tsv

jobs.log_to(snakemake.log[0])
write_tsv(snakemake.output[0], pd.concat([read_tsv(path) for path in snakemake.input], ignore_index=True))
