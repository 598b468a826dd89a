"""Learned brain masks (deepbet) of one shard's subjects, and the intracranial volumes they enclose."""

from legibility import jobs, skullstrip
from legibility.io import write_tsv

jobs.log_to(snakemake.log[0])
table = skullstrip.run_shard(snakemake.params.images, {**snakemake.params.settings, "threads": snakemake.threads}, snakemake.output.masks)
write_tsv(snakemake.output.table, table)
