"""QC of one shard's images."""

from legibility import jobs, qc
from legibility.io import write_tsv

jobs.log_to(snakemake.log[0])
write_tsv(snakemake.output[0], qc.run_shard(snakemake.params.images, snakemake.params.expected, snakemake.params.thresholds))
