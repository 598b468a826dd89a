"""The parcellation used for connectivity."""

from legibility import atlas, jobs
from legibility.io import save_nifti, write_tsv

jobs.log_to(snakemake.log[0])
settings = snakemake.params.atlas
if settings["source"] == "derived":
    image, table = atlas.derive(settings["n_regions"])
else:
    image, table = atlas.load(settings["path"], settings["labels"])
save_nifti(snakemake.output.image, image)
write_tsv(snakemake.output.table, table)
