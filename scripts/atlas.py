"""A parcellation: the connectivity atlas, or the baselines' one."""

from legibility import atlas, jobs
from legibility.io import save_nifti, write_tsv

jobs.log_to(snakemake.log[0])
image, table = atlas.from_config(snakemake.params.atlas)
save_nifti(snakemake.output.image, image)
write_tsv(snakemake.output.table, table)
