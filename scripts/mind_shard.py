"""MIND networks of one shard's subjects, from their preprocessed cubes."""

import nibabel as nib

from legibility import jobs, mind
from legibility.io import read_tsv

jobs.log_to(snakemake.log[0])
mind.run_shard(
    read_tsv(snakemake.input.table),
    snakemake.input.images,
    snakemake.params.resolution,
    nib.load(snakemake.input.atlas),
    snakemake.params.features,
    snakemake.output.array,
    snakemake.output.table,
)
