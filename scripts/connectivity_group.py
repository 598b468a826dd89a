"""The group mean connectivity matrix over all subjects with connectivity."""

import numpy as np
import pandas as pd

from legibility import connectivity, jobs
from legibility.io import read_tsv, save_figure, write_tsv

jobs.log_to(snakemake.log[0])
vectors = []
for table_path, array_path in zip(snakemake.input.tables, snakemake.input.arrays):
    rows = read_tsv(table_path).query("status == 'ok'")["row"].to_numpy()
    vectors.append(np.load(array_path)[rows])
stacked = np.vstack(vectors)
mean = connectivity.square(np.nanmean(stacked, axis=0))
write_tsv(snakemake.output.matrix, pd.DataFrame(mean))
kind = "correlation" if snakemake.params.kind == "tangent" else snakemake.params.kind
save_figure(snakemake.output.figure, connectivity.matrix_figure(mean, f"mean {kind} of {len(stacked)} subjects"))
