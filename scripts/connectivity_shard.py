"""Connectivity of one shard's subjects."""

import nibabel as nib

from legibility import connectivity, jobs
from legibility.io import read_tsv

jobs.log_to(snakemake.log[0])
out = snakemake.output
connectivity.run_shard(
    snakemake.params.images,
    read_tsv(snakemake.input.qc),
    nib.load(snakemake.input.atlas) if "atlas" in snakemake.input.keys() else None,
    snakemake.params.settings,
    out.array,
    out.table,
    out.series,
    out.figures,
)
