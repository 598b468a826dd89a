"""A bundle's model on this cohort: every subject whose inputs passed QC gets a prediction
(results/predictions/<model>.tsv, with the QC status of each input); metrics with intervals where
the cohort has the target."""

import logging

import numpy as np

from legibility import bundle, jobs, metrics, predict
from legibility.grid import ModelSpec
from legibility.inputs import add_derived, read_phenotypes
from legibility.io import read_tsv, write_json, write_tsv

jobs.log_to(snakemake.log[0])
params, files = snakemake.params, snakemake.input
card = bundle.read_card(files.bundle)
spec, target = ModelSpec.from_dict(card["spec"]), card["target"]["name"]
qc = read_tsv(files.qc)
status = qc.pivot(index="subject", columns="modality", values="status")[params.modalities].add_prefix("qc_")
ready = status.index[(status == "pass").all(axis=1)]
for name in ("preprocess", "connectivity", "mind"):  # and made it through the stage the model reads
    if name in files.keys():
        table = read_tsv(files[name])
        ok = table[table["status"] == "ok"].groupby("subject").size()
        ready = ready[ready.isin(ok.index[ok >= (len(spec.images) if name == "preprocess" else 1)])]
source = params.phenotypes
phenotypes = read_phenotypes(source["path"], source["subject_column"], source["strip_prefix"], params.variables)
add_derived(phenotypes, params.variables, qc)
subjects = [s for s in ready if s in phenotypes.values.index or not spec.reads_metadata]
levels = card["target"].get("levels", [])
read = {n: params.variables[n] for n in card["variables_read"]}
frames = [predict.run(files.bundle, fold, subjects, dict(files), phenotypes, read, snakemake.threads) for fold in card["folds"]]
predicted = predict.pooled(frames, spec.target_type, levels).set_index("subject")
table = status.join(predicted, how="left").reset_index()
table = table.astype({c: t for c, t in predicted.dtypes.items() if t == np.float32})  # written as the training job writes them
summary = {"bundle": files.bundle, "model": card["model"], "n_predicted": len(subjects), "n_subjects": len(status)}
if target in params.variables:  # the cohort has the target: how well the bundle does on it
    truth = phenotypes.values[target].reindex(table["subject"])
    known = truth.notna().to_numpy() & table["prediction"].notna().to_numpy()
    table.insert(1, "true", truth.to_numpy() if spec.target_type == "continuous" else phenotypes.label(target, truth.to_numpy()))
    y = truth.to_numpy()[known]
    if spec.target_type == "continuous":
        scored = table["prediction"].to_numpy(float)[known]
        summary["test"] = metrics.regression(y, scored)
    else:
        scored = np.array([levels.index(v) for v in table["prediction"][known]])
        summary["test"] = metrics.classification(y.astype(int), table.loc[known, [f"p_{v}" for v in levels]].to_numpy(float), len(levels))
    summary["n_scored"] = int(known.sum())
    summary["interval"] = metrics.bootstrap_ci(spec.target_type, y, scored, 1000, params.seed)
write_tsv(snakemake.output.predictions, table)
write_json(snakemake.output.metrics, summary)
logging.info("%s: %d of %d subjects predicted; %s", card["model"], len(subjects), len(status), summary.get("test", "no target to score"))
