"""Register one shard's QC-passed structural images to MNI space (or check that they lie there)."""

from legibility import jobs, qc, register
from legibility.io import read_tsv, write_tsv

jobs.log_to(snakemake.log[0])
params = snakemake.params
table = read_tsv(snakemake.input.qc)
table = register.run_shard(table, qc.checked_images(table, params.images), params.settings, params.seed, snakemake.output.montage)
write_tsv(snakemake.output.table, table)
