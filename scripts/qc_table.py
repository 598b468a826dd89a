"""The QC table of the whole cohort (rejected labels included) and its group figure."""

import logging

import pandas as pd

from legibility import jobs, qc
from legibility.io import read_tsv, save_figure, write_tsv

jobs.log_to(snakemake.log[0])
rejected = pd.DataFrame(snakemake.params.rejected, columns=qc.QC_COLUMNS)
table = pd.concat([read_tsv(path) for path in snakemake.input] + [rejected], ignore_index=True)
write_tsv(snakemake.output.table, table)
save_figure(snakemake.output.figure, qc.figure(table, snakemake.params.thresholds))
failed = table[table["status"] != "pass"]
logging.info("%d images checked, %d failed", len(table), len(failed))
for row in failed.itertuples():
    logging.warning("excluded: sub-%s %s (%s): %s", row.subject, row.modality, row.path, row.reasons)
