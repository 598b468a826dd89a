"""QC of one shard's images, with a montage of every failed one."""

from legibility import jobs, qc
from legibility.io import read_tsv, write_tsv

jobs.log_to(snakemake.log[0])
params = snakemake.params
table = qc.run_shard(params.images, params.expected, params.thresholds, snakemake.output.montages,
                     brain=read_tsv(snakemake.input.brain), strip=params.strip)  # fmt: skip
write_tsv(snakemake.output.table, table)
