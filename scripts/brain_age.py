"""Each age model's brain-age gap, raw and bias-corrected (legibility.brain_age)."""

import logging
from pathlib import Path

from legibility import brain_age, jobs
from legibility.io import read_tsv, write_json, write_tsv

jobs.log_to(snakemake.log[0])
for table_path, summary_path in zip(snakemake.output.tables, snakemake.output.summaries):
    folder = Path(table_path).parent  # results/models/<model>/
    folds = {fold: read_tsv(folder / fold / "predictions.tsv") for fold in snakemake.params.folds}
    table, summary = brain_age.table(folds)
    write_tsv(table_path, table)
    write_json(summary_path, {"model": folder.name, **summary})
    r = summary["correlation_with_age"].get("test", {})
    logging.info("%s: the gap's correlation with age on test subjects, raw %.3f, corrected %.3f", folder.name, r.get("gap"), r.get("corrected_gap"))
