"""One target's split: its subjects drawn into train/val/test or folds, shard by shard, then
restricted to the eligible ones."""

import logging

from legibility import jobs, shards, splits
from legibility.inputs import LABEL, read_phenotypes
from legibility.io import read_tsv, write_tsv

jobs.log_to(snakemake.log[0])
params, target = snakemake.params, snakemake.wildcards.target
table = read_phenotypes(params.phenotypes["path"], params.phenotypes["subject_column"], params.phenotypes["strip_prefix"], params.variables)
qc = read_tsv(snakemake.input.qc)
subjects = sorted(s for s in set(qc["subject"]) if LABEL.match(s))  # a file with a bad label was never read
blocks = shards.members(subjects, params.shards)
assigned = splits.assign(table.values.reindex(subjects), target, blocks, params.split, params.variables, params.seed)
result = splits.target_split(subjects, assigned.set_index("subject")["part"], target, table.values[target], qc, params.modalities)
result.insert(1, "shard", [shards.shard_of(s, params.shards) for s in result["subject"]])
logging.info("%s: %s", target, result["part"].value_counts().to_dict())
write_tsv(snakemake.output[0], result)
