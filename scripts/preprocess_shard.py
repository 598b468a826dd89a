"""Preprocess one shard's structural images."""

from legibility import jobs, resample
from legibility.io import read_tsv

jobs.log_to(snakemake.log[0])
resample.run_shard(
    snakemake.params.images,
    read_tsv(snakemake.input.qc),
    snakemake.params.settings,
    dict(zip(snakemake.params.resolutions, snakemake.output.arrays)),
    snakemake.output.table,
    snakemake.output.images,
)
