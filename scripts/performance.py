"""The performance and legibility tables, the grid heatmap and one figure per target."""

from pathlib import Path

from legibility import aggregate, jobs
from legibility.io import save_figure, write_tsv

jobs.log_to(snakemake.log[0])
table = aggregate.performance_table([Path(p).parent for p in snakemake.input.metrics], snakemake.params.statistics, snakemake.params.seed)
write_tsv(snakemake.output.table, table)
write_tsv(snakemake.output.legibility, aggregate.legibility_table(table))
save_figure(snakemake.output.figure, aggregate.grid_figure(table))
for target in dict.fromkeys(table["target"]):
    save_figure(Path(snakemake.output.targets) / f"{target}.png", aggregate.target_figure(table, target))
