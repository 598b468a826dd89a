"""The network of targets: their mutual information (training subjects only) and how alike
their score profiles are across input sets."""

import logging

from legibility import analysis, jobs, metrics
from legibility.inputs import add_derived, read_phenotypes
from legibility.io import read_tsv, save_figure, write_tsv

jobs.log_to(snakemake.log[0])
params = snakemake.params
phenotypes = read_phenotypes(params.phenotypes["path"], params.phenotypes["subject_column"], params.phenotypes["strip_prefix"], params.variables)
add_derived(phenotypes, params.variables, read_tsv(snakemake.input.qc))
targets = sorted(params.variables)
types = {t: params.variables[t]["type"] for t in targets}
mi, null, p = analysis.mutual_information(phenotypes.values[targets], types, read_tsv(snakemake.input.splits), params.folds, params.n_folds,
                                          params.settings["mi_neighbors"], params.seed, params.settings["mi_permutations"])  # fmt: skip
logging.info("mutual information of %d targets, %d permutations per pair", len(targets), params.settings["mi_permutations"])
performance, legibility = read_tsv(snakemake.input.performance), read_tsv(snakemake.input.legibility)
similarity = analysis.profile_similarity(performance)
best = metrics.skill(legibility["score"], legibility["chance"]).set_axis(legibility["target"])  # each target's best score, above chance
share = params.settings["edge_share"]
write_tsv(snakemake.output.mutual_information, mi.rename_axis("target").reset_index())
write_tsv(snakemake.output.table, analysis.network_table(mi, null, p, similarity, best, share))
save_figure(snakemake.output.figure, analysis.network_figure(mi, null, p, similarity, best, share, params.seed))
