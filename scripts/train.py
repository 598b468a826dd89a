"""Train one model on one fold (or the holdout) and write its folder."""

import json
from pathlib import Path

from legibility import jobs, splits, train
from legibility.grid import ModelSpec
from legibility.inputs import add_derived, read_phenotypes
from legibility.io import read_tsv

jobs.log_to(snakemake.log[0])
params = snakemake.params
spec, variables = ModelSpec.from_dict(params.model["spec"]), params.model["variables"]
spec.training.update(workers=snakemake.resources.workers)
source = params.phenotypes
phenotypes = read_phenotypes(source["path"], source["subject_column"], source["strip_prefix"], variables)
if "qc" in snakemake.input.keys():  # variables derived from registration (head scale)
    add_derived(phenotypes, variables, read_tsv(snakemake.input.qc))
sources = {key: snakemake.input[key] for key in snakemake.input.keys() if key not in ("split", "phenotypes", "qc", "images", "init_from")}
if "images" in snakemake.input.keys():  # the tables of preprocessed and augmented images and of region means
    sources.update(json.loads(Path(snakemake.input.images).read_text()))
fold = snakemake.wildcards.fold
train.run(
    spec,
    splits.fold_roles(read_tsv(snakemake.input.split), fold, params.folds),
    phenotypes,
    variables,
    {**sources, "copies": params.copies},
    params.seed,
    Path(snakemake.output.metrics).parent,
    threads=snakemake.threads,
    fold=fold,
)
