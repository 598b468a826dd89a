"""Augmented copies of one shard's subjects."""

from legibility import augment, jobs
from legibility.io import read_tsv

jobs.log_to(snakemake.log[0])
augment.run_shard(
    read_tsv(snakemake.input.table),
    snakemake.input.array,
    snakemake.params.settings,
    snakemake.params.normalise,
    snakemake.params.fov_mm,
    snakemake.params.seed,
    snakemake.output.array,
    snakemake.output.table,
)
