"""The performance table and grid heatmap."""

from legibility import aggregate, jobs
from legibility.io import save_figure, write_tsv

jobs.log_to(snakemake.log[0])
table = aggregate.performance_table(snakemake.input)
write_tsv(snakemake.output.table, table)
save_figure(snakemake.output.figure, aggregate.grid_figure(table))
