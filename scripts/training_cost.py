"""Training cost per input set, from each job's metrics.json (wall time, device, threads) and
its Snakemake benchmark (peak memory)."""

import logging
import json
from pathlib import Path

import pandas as pd

from legibility import analysis, jobs
from legibility.io import read_tsv, save_figure, write_tsv

jobs.log_to(snakemake.log[0])
cells = read_tsv(snakemake.input.performance).set_index("model")["cell"]
runs = []
for metrics_path, benchmark_path in zip(snakemake.input.metrics, snakemake.input.benchmarks):
    metrics = json.loads(Path(metrics_path).read_text())
    benchmark = read_tsv(benchmark_path).iloc[-1]
    runs.append({"model": metrics["model"], "fold": metrics["fold"], "cell": cells[metrics["model"]], "device": metrics["device"],
                 "threads": metrics["provenance"]["threads"], "wall_seconds": metrics["wall_seconds"], "job_seconds": benchmark["s"],
                 "max_rss_mb": benchmark["max_rss"]})  # fmt: skip
runs = pd.DataFrame(runs)
costs = analysis.cost_table(runs, snakemake.params.confidence)
logging.info("%d training jobs, %.2f device hours", len(runs), costs["device_hours"].sum())
write_tsv(snakemake.output.table, costs)
save_figure(snakemake.output.figure, analysis.cost_figure(runs, costs, snakemake.params.seed))
