"""results/dashboard.html, one self-contained page to explore the grid."""

import logging
import json
from pathlib import Path

from legibility import dashboard, jobs
from legibility.io import atomic_path, read_tsv

jobs.log_to(snakemake.log[0])
read, weights = {}, {}
for path in map(Path, snakemake.input.metrics):  # each model's first fold
    metrics = json.loads(path.read_text())
    read[metrics["model"]] = metrics["variables_read"]
    weights[metrics["model"]] = f"models/{metrics['model']}/{path.parent.name}/model.pt"
page = dashboard.build(read_tsv(snakemake.input.performance), read_tsv(snakemake.input.legibility), read, weights, snakemake.params.figures)
logging.info("dashboard of %d models", len(read))
with atomic_path(snakemake.output[0]) as tmp:
    tmp.write_text(page)
