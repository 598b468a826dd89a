"""The QC table of the whole cohort, with a summary in the log."""

import logging

from legibility import jobs
from legibility.io import read_tsv, write_tsv

jobs.log_to(snakemake.log[0])
import pandas as pd

table = pd.concat([read_tsv(path) for path in snakemake.input], ignore_index=True)
write_tsv(snakemake.output[0], table)
failed = table[table["status"] != "pass"]
logging.info("%d images checked, %d failed", len(table), len(failed))
for row in failed.itertuples():
    logging.warning("excluded: sub-%s %s: %s", row.subject, row.modality, row.reasons)
