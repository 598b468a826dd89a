"""One model's folds, card and weights as results/bundles/<model>.tar (legibility.bundle)."""

import json
import logging
from pathlib import Path

import yaml

from legibility import bundle, jobs
from legibility.io import read_tsv

jobs.log_to(snakemake.log[0])
model = snakemake.wildcards.model
folds = {Path(p).parent.name: json.loads(Path(p).read_text()) for p in snakemake.input.metrics}
weights = {Path(p).parent.name: Path(p).read_bytes() for p in snakemake.input.weights}
config = yaml.safe_load(Path(snakemake.input.config).read_text())
row = read_tsv(snakemake.input.performance).set_index("model").loc[model]
performance = json.loads(row.to_json())  # plain numbers, NaN as null
atlases = {name: Path(snakemake.input[name]).read_bytes() for name in ("baseline", "atlas", "mind") if name in snakemake.input.keys()}
card = bundle.card(folds, weights, config, performance, atlases)
bundle.write(snakemake.output[0], card, weights)
logging.info("%s: %d folds, card and weights in %s", model, len(weights), snakemake.output[0])
