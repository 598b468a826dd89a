"""Assign every subject to train, validation or test, stratified."""

import pandas as pd

from legibility import jobs, splits
from legibility.inputs import read_phenotypes
from legibility.io import write_tsv

jobs.log_to(snakemake.log[0])
source, settings = snakemake.params.phenotypes, snakemake.params.split
table = read_phenotypes(source["path"], source["subject_column"], source["strip_prefix"], snakemake.params.variables)
values = table.values.reindex(snakemake.params.subjects)
keys = splits.strata(values, settings["stratify_by"], snakemake.params.variables)
assigned = splits.assign(values.index, keys, settings, snakemake.params.seed)
write_tsv(snakemake.output[0], pd.DataFrame({"subject": assigned.index, "stratum": keys[assigned.index].to_numpy(), "split": assigned.to_numpy()}))
