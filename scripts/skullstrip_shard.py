"""One shard's structural images multiplied by their subject's learned brain mask."""

from legibility import jobs, skullstrip
from legibility.io import read_tsv

jobs.log_to(snakemake.log[0])
skullstrip.strip_shard(snakemake.params.images, read_tsv(snakemake.input.table), snakemake.params.settings, snakemake.output[0])
