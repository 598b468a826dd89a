"""Preprocess one shard's structural images."""

from legibility import jobs, qc, resample
from legibility.io import read_tsv

jobs.log_to(snakemake.log[0])
table = read_tsv(snakemake.input.qc)
resample.run_shard(
    qc.checked_images(table, snakemake.params.images),
    table,
    snakemake.params.settings,
    dict(zip(snakemake.params.resolutions, snakemake.output.arrays)),
    snakemake.output.table,
    snakemake.output.images,
)
