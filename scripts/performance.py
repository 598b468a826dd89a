"""The performance and legibility tables, the grid heatmap, one figure per target, and every
model's predictions on the subjects it never saw (pooled over its folds) and training curves."""

from pathlib import Path

from legibility import aggregate, jobs, metrics
from legibility.io import save_figure, write_tsv

jobs.log_to(snakemake.log[0])
params = snakemake.params
folders = {}
for path in snakemake.input.metrics:  # results/models/<model>/<fold>/metrics.json, in fold order
    folders.setdefault(Path(path).parent.parent.name, []).append(Path(path).parent)
loaded = aggregate.load(folders)
table = aggregate.performance_table(loaded, params.statistics, params.seed)
legibility = aggregate.legibility_table(table, loaded, params.statistics, params.seed)
write_tsv(snakemake.output.table, table)
write_tsv(snakemake.output.legibility, legibility)
save_figure(snakemake.output.figure, aggregate.grid_figure(table, dict(zip(legibility["target"], legibility["best_input_set"]))))
for target in dict.fromkeys(table["target"]):
    save_figure(Path(snakemake.output.targets) / f"{target}.png", aggregate.target_figure(table, target))
for row in table.itertuples():
    predictions, out = loaded[row.model]["predictions"], Path(snakemake.output.predictions)
    write_tsv(out / f"{row.model}.tsv", predictions)
    title = f"{row.model}: {row.n_test} subjects unseen in training ({'out of fold' if row.folds > 1 else 'test'})"
    save_figure(out / f"{row.model}.png", aggregate.predictions_figure(title, row.target_type, row.target, predictions))
    folds = {fold["fold"]: fold for fold in loaded[row.model]["folds"]}
    curve = aggregate.curve_figure(f"Training of {row.model}", folds, metrics.headline(row.target_type))
    save_figure(Path(snakemake.output.curves) / f"{row.model}.png", curve)
