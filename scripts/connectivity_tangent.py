"""Tangent-space connectivity for the cohort, around the mean of one fold's training subjects."""

import numpy as np
import pandas as pd

from legibility import connectivity, jobs, splits
from legibility.io import read_tsv, save_npy, write_tsv

jobs.log_to(snakemake.log[0])
roles = splits.fold_roles(read_tsv(snakemake.input.split), snakemake.wildcards.fold, snakemake.params.folds)
split = roles.set_index("subject")["split"].to_dict()
subjects, vectors = connectivity.tangent_vectors(snakemake.input.series, split)
save_npy(snakemake.output.array, np.asarray(vectors, dtype=np.float32).reshape(len(subjects), -1))
write_tsv(snakemake.output.table, pd.DataFrame({"subject": subjects, "row": range(len(subjects)), "status": "ok", "array": snakemake.output.array}))
