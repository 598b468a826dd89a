"""The group mean connectivity matrix over all subjects with connectivity, and (for
connectivity, not MIND) the README that says how the region signals were denoised."""

import numpy as np
import pandas as pd

from legibility import connectivity, jobs
from legibility.io import atomic_path, read_tsv, save_figure, write_tsv

jobs.log_to(snakemake.log[0])
vectors, volumes = [], []
for table_path, array_path in zip(snakemake.input.tables, snakemake.input.arrays):
    table = read_tsv(table_path).query("status == 'ok'")
    vectors.append(np.load(array_path)[table["row"].to_numpy()])
    volumes.extend(table["volumes"] if "volumes" in table else [np.nan] * len(table))
stacked = np.vstack(vectors)
mean = connectivity.square(np.nanmean(stacked, axis=0))
write_tsv(snakemake.output.matrix, pd.DataFrame(mean))
kind = "correlation" if snakemake.params.kind == "tangent" else snakemake.params.kind
save_figure(snakemake.output.figure, connectivity.matrix_figure(mean, f"mean {kind} of {len(stacked)} subjects"))
if "readme" in snakemake.output.keys():
    with atomic_path(snakemake.output.readme) as tmp:
        tmp.write_text(connectivity.readme(**snakemake.params.denoising, volumes=volumes))
