"""Atlas-region means of one shard's preprocessed images (the linear baselines' image features)."""

import nibabel as nib

from legibility import jobs, regions
from legibility.io import write_tsv

jobs.log_to(snakemake.log[0])
table = regions.shard_region_means(snakemake.input.table, snakemake.input.images, snakemake.params.resolution,
                                   nib.load(snakemake.input.atlas))  # fmt: skip
write_tsv(snakemake.output[0], table)
