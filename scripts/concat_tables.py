"""Concatenate TSV tables with the same columns; given `arrays` (one per table), an index:
each row also names the packed array its `row` is in."""

import pandas as pd

from legibility import jobs
from legibility.io import read_tsv, write_tsv

jobs.log_to(snakemake.log[0])
tables = [read_tsv(path) for path in snakemake.input.get("tables", snakemake.input)]
if "arrays" in snakemake.input.keys():
    tables = [table.assign(array=array) for table, array in zip(tables, snakemake.input.arrays, strict=True)]
write_tsv(snakemake.output[0], pd.concat(tables, ignore_index=True))
