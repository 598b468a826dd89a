"""Connectivity vectors of one shard's BOLD series."""

import nibabel as nib

from legibility import connectivity, jobs
from legibility.io import read_tsv

jobs.log_to(snakemake.log[0])
connectivity.run_shard(
    snakemake.params.bold,
    read_tsv(snakemake.input.qc),
    nib.load(snakemake.input.atlas),
    snakemake.params.settings,
    snakemake.output.array,
    snakemake.output.table,
)
