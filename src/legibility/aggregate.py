"""The grid's verdicts, from every model's folds: the performance table (one row per model: its
pooled out-of-fold, or holdout test, predictions scored for the deep model and its linear
baseline, each with a bootstrap interval, a permutation p-value and a false-discovery-rate
q-value), each target's legibility (Simes over its cells, Benjamini-Hochberg across targets,
and the best input set chosen on validation subjects only), and the figures."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

from . import IMAGING, metrics
from .grid import INPUT_ORDER, comparator_inputs, model_name
from .io import read_tsv
from .seeds import derive_seed

KINDS = {"model": "", "baseline": "baseline_"}  # the deep model and its linear baseline: column prefixes
LEAD_COLUMNS = ["model", "target", "target_type", "input_set", "cell", *INPUT_ORDER, "resolution", "kind", "folds", "n_train", "n_val",
                "n_test", "metric", "score", "ci_low", "ci_high", "p_value", "q_value", "model_legible", "baseline_score",
                "baseline_ci_low", "baseline_ci_high", "baseline_p_value", "baseline_q_value", "baseline_legible", "legible",
                "chance", "degenerate", "score_fold_mean", "score_fold_sd", "baseline_fold_mean", "baseline_fold_sd",
                "val_score", "baseline_val_score", "comparator", "delta_score", "delta_ci_low", "delta_ci_high", "delta_p_value",
                "delta_q_value", "adds_to_metadata", "confounds_comparator", "confounds_delta_score", "confounds_delta_ci_low",
                "confounds_delta_ci_high", "confounds_delta_p_value", "confounds_delta_q_value", "beats_confounds"]  # fmt: skip
TAIL_COLUMNS = ["n_parameters", "epochs", "best_epoch", "kept", "wall_seconds", "device"]
SHORT = {"balanced_accuracy": "BA", "r2": "R²"}
SHORTFALL = 0.05  # a network this far below its own linear baseline added noise, not knowledge
# a cell's comparators (grid.comparator_inputs): their columns' prefix, the comparator's name
# column, and the verdict column (the increment's interval above 0 and its q below the FDR level)
COMPARED = {"metadata": ("", "comparator", "adds_to_metadata"), "confounds": ("confounds_", "confounds_comparator", "beats_confounds")}


def load(model_dirs: dict) -> dict:
    """{model: {"folds": [each fold's metrics.json], "predictions": the folds' test predictions}}
    from {model: [its fold folders]}: under k-fold, every eligible subject's out-of-fold
    prediction, with the fold that made it."""
    loaded = {}
    for model, folders in model_dirs.items():
        folds = [json.loads(Path(f, "metrics.json").read_text()) for f in folders]
        predictions = pd.concat([read_tsv(Path(f, "predictions.tsv")) for f in folders], ignore_index=True)
        loaded[model] = {"folds": folds, "predictions": predictions[predictions["split"] == "test"].reset_index(drop=True)}
    return loaded


def scored(target_type: str, predictions: pd.DataFrame, prefix: str = "") -> dict:
    """Every metric of the predictions in column `<prefix>prediction` (and their probabilities
    `<prefix>p_<level>`), on the subjects in `predictions`."""
    if target_type == "continuous":
        return metrics.regression(predictions["true"].astype(float), predictions[f"{prefix}prediction"].astype(float))
    levels = [c.removeprefix("p_") for c in predictions.columns if c.startswith("p_")]
    truth = predictions["true"].astype(str).map({level: i for i, level in enumerate(levels)})
    probabilities = predictions[[f"{prefix}p_{level}" for level in levels]].to_numpy(float)
    return metrics.classification(truth.to_numpy(), probabilities, len(levels))


def chance(target_type: str, truth) -> float:
    """The headline metric of a model that knows nothing: R² 0, or 1/K over the K classes
    present among the scored subjects (balanced accuracy averages over those only)."""
    return metrics.chance(target_type, pd.Series(truth).nunique())


def cell(inputs, resolution, kind) -> str:
    """A model's column in the grid: its input set, with its grid and encoder where they are not
    the default (age from T1 at 128³ and by SFCN are cells beside age from T1)."""
    return "+".join(inputs) + (" (128³)" if resolution == 128 else "") + (f" ({kind})" if kind != "fusion" else "")


def model_row(model: str, result: dict, settings: dict, seed: int) -> dict:
    """One model's row: pooled metrics of the deep model and its baseline, their intervals and
    permutation p-values, the per-fold spread, validation scores and training facts."""
    folds, test = result["folds"], result["predictions"]
    first, target_type = folds[0], folds[0]["target_type"]
    metric = metrics.headline(target_type)
    truth = test["true"].astype(float).to_numpy() if target_type == "continuous" else test["true"].astype(str).to_numpy()
    row = {
        **{k: first[k] for k in ("model", "target", "target_type", "kind")},
        "input_set": "+".join(first["inputs"]),
        "cell": cell(first["inputs"], first["resolution"], first["kind"]),
        **{i: "yes" if i in first["inputs"] else "no" for i in INPUT_ORDER},
        "resolution": first["resolution"],
        "folds": len(folds),
        "n_train": round(np.mean([f["n_train"] for f in folds])),
        "n_val": round(np.mean([f["n_val"] for f in folds])),
        "n_test": len(test),
        "metric": metric,
        "chance": chance(target_type, truth),
        "degenerate": "; ".join(f"{f['fold']}: {f['degenerate']}" if len(folds) > 1 else f["degenerate"] for f in folds if f["degenerate"]),
    }
    for kind, prefix in KINDS.items():
        column = f"{prefix}prediction"
        predicted = test[column].astype(float).to_numpy() if target_type == "continuous" else test[column].astype(str).to_numpy()
        every = scored(target_type, test, prefix)
        # the same resamples for both: their intervals are comparable subject by subject
        intervals = metrics.bootstrap_ci(target_type, truth, predicted, settings["bootstrap"], derive_seed(seed, model, "bootstrap"),
                                         settings["confidence"])  # fmt: skip
        per_fold = [(f if kind == "model" else f["baseline"])["test"][metric] for f in folds]
        name = "score" if kind == "model" else "baseline_score"
        row.update({
            name: every[metric], f"{prefix}ci_low": intervals[metric][0], f"{prefix}ci_high": intervals[metric][1],
            f"{prefix}p_value": metrics.permutation_p(target_type, truth, predicted, settings["permutations"],
                                                      derive_seed(seed, model, kind, "permutation")),
            f"{'score' if kind == 'model' else 'baseline'}_fold_mean": np.mean(per_fold),
            f"{'score' if kind == 'model' else 'baseline'}_fold_sd": np.std(per_fold, ddof=1) if len(per_fold) > 1 else np.nan,
            f"{'' if kind == 'model' else 'baseline_'}val_score": np.mean([(f if kind == "model" else f["baseline"])["val"][metric] for f in folds]),
            **{f"{prefix}{k}": v for k, v in every.items() if k != metric or kind == "model"},
        })  # fmt: skip
        if "mae" in intervals:
            row.update({f"{prefix}mae_ci_low": intervals["mae"][0], f"{prefix}mae_ci_high": intervals["mae"][1]})
    if row["baseline_score"] - row["score"] > SHORTFALL:  # said, never silent: read the baseline
        shortfall = f"scores {row['baseline_score'] - row['score']:.2f} below its linear baseline on unseen subjects"
        row["degenerate"] = "; ".join(filter(None, [row["degenerate"], shortfall]))
    row.update({
        "baseline_method": first["baseline"]["method"], "n_parameters": first["n_parameters"],
        "epochs": ";".join(str(f["epochs"]) for f in folds), "best_epoch": ";".join(str(f["best_epoch"]) for f in folds),
        "kept": "; ".join(dict.fromkeys(kept(f["best_epoch"], f["epochs"]) for f in folds)),
        "wall_seconds": round(sum(f["wall_seconds"] for f in folds), 2), "device": first["device"],
    })  # fmt: skip
    return row


def kept(best_epoch: int, epochs: int) -> str:
    """Whose weights a fold's network kept, said where it stopped learning early: the score of a
    network that kept its linear start is the baseline's, and one that kept its first epoch's
    learned little beyond it."""
    if best_epoch == 0:
        return "linear start: no epoch improved on it by one standard error on validation"
    if best_epoch == 1:
        return f"epoch 1 of {epochs}: validation worsened after the first epoch"
    return "trained"


def performance_table(loaded: dict, settings: dict, seed: int) -> pd.DataFrame:
    """One row per model. The deep models' and baselines' p-values form one family, corrected
    for false discoveries across the grid (Benjamini-Hochberg); each is legible when its
    interval's lower bound is above chance and its q-value below the FDR level, and a cell is
    legible when either is."""
    table = pd.DataFrame([model_row(model, result, settings, seed) for model, result in loaded.items()])
    q = false_discovery_control(np.concatenate([table["p_value"], table["baseline_p_value"]]), method="bh")
    table["q_value"], table["baseline_q_value"] = q[: len(table)], q[len(table) :]
    for prefix, column in (("", "model_legible"), ("baseline_", "baseline_legible")):
        score = table["score" if not prefix else "baseline_score"]
        passes = (table[f"{prefix}ci_low"] > table["chance"]) & (table[f"{prefix}q_value"] < settings["fdr"]) & np.isfinite(score)
        table[column] = np.where(passes, "yes", "no")
    table["legible"] = np.where((table["model_legible"] == "yes") | (table["baseline_legible"] == "yes"), "yes", "no")
    table = increments(table, loaded, settings, seed)
    table["resolution"] = table["resolution"].astype("Int64")
    middle = [c for c in table.columns if c not in LEAD_COLUMNS + TAIL_COLUMNS]
    return table[LEAD_COLUMNS + middle + TAIL_COLUMNS]


def increments(table: pd.DataFrame, loaded: dict, settings: dict, seed: int) -> pd.DataFrame:
    """Each cell's increment over its comparators (what imaging adds to the cell's metadata
    blocks; what it adds to the confounds): its network's headline metric less the comparator
    network's, on the subjects both predicted (a target's models share them), with a paired
    bootstrap interval (the same resampled subjects for both) and a paired permutation p (the
    two predictions of each subject swapped at random). Every increment's p is in one family,
    corrected for false discoveries across the grid."""
    table = table.copy()
    p_columns = []
    for kind, (prefix, name_column, verdict) in COMPARED.items():
        values = []
        for row in table.itertuples():
            inputs = comparator_inputs(loaded[row.model]["folds"][0]["inputs"]).get(kind)
            other = model_name(row.target, inputs) if inputs else None
            values.append(_increment(row, loaded, other, settings, seed) if other in loaded else {})
        found = pd.DataFrame(values, index=table.index)
        table[name_column] = found.get("comparator")
        for column in ("delta_score", "delta_ci_low", "delta_ci_high", "delta_p_value"):
            table[prefix + column] = found.get(column, np.nan)
        p_columns.append(prefix + "delta_p_value")
    p = table[p_columns].to_numpy(float)
    q = np.full(p.shape, np.nan)
    if np.isfinite(p).any():
        q[np.isfinite(p)] = false_discovery_control(p[np.isfinite(p)], method="bh")
    for column, (prefix, name_column, verdict) in enumerate(COMPARED.values()):
        table[prefix + "delta_q_value"] = q[:, column]
        passes = (table[prefix + "delta_ci_low"] > 0) & (table[prefix + "delta_q_value"] < settings["fdr"])
        table[verdict] = np.where(table[name_column].notna(), np.where(passes, "yes", "no"), None)
    return table


def _increment(row, loaded: dict, other: str, settings: dict, seed: int) -> dict:
    merged = loaded[row.model]["predictions"].merge(loaded[other]["predictions"][["subject", "prediction"]], on="subject", suffixes=("", "_other"))
    cast = float if row.target_type == "continuous" else str
    truth, a, b = (merged[c].astype(cast).to_numpy() for c in ("true", "prediction", "prediction_other"))
    draws = (settings["bootstrap"], derive_seed(seed, row.model, other, "paired bootstrap"), settings["confidence"])
    low, high = metrics.paired_bootstrap_ci(row.target_type, truth, a, b, *draws)
    scores = metrics.scores_of(row.target_type, truth, np.stack([a, b]))
    p = metrics.paired_permutation_p(row.target_type, truth, a, b, settings["permutations"], derive_seed(seed, row.model, other, "paired permutation"))
    return {"comparator": other, "delta_score": scores[0] - scores[1], "delta_ci_low": low, "delta_ci_high": high, "delta_p_value": p}


def simes(p_values) -> float:
    """Simes' combined p-value of a family: min over i of n p_(i) / i (valid for independent or
    positively dependent tests, as a target's cells are)."""
    p = np.sort(np.asarray(p_values, float)[np.isfinite(p_values)])
    return float(np.min(len(p) * p / np.arange(1, len(p) + 1))) if len(p) else 1.0


def selected(target_models: dict, metric: str) -> tuple:
    """The input set (and kind: deep model or baseline) chosen in each fold on that fold's
    validation subjects, and the test predictions of each fold's choice: scoring them scores the
    selection itself, never the subjects it was made on."""
    n_folds = len(next(iter(target_models.values()))["folds"])
    choices, parts = [], []
    for k in range(n_folds):
        candidates = [(result["folds"][k][key]["val"][metric] if key == "baseline" else result["folds"][k]["val"][metric], model, key)
                      for model, result in target_models.items() for key in KINDS]  # fmt: skip
        _, model, key = max(candidates, key=lambda c: (np.nan_to_num(c[0], nan=-np.inf), c[2] == "model"))
        fold = target_models[model]["folds"][k]["fold"]
        predictions = target_models[model]["predictions"]
        chosen = predictions[predictions["fold"] == fold].copy()
        if key == "baseline":  # its predictions (and class probabilities) in the model's columns
            for column in [c for c in chosen.columns if c == "prediction" or c.startswith("p_")]:
                chosen[column] = chosen[f"baseline_{column}"]
        parts.append(chosen)
        choices.append((model, key))
    return choices, pd.concat(parts, ignore_index=True)


def legibility_table(performance: pd.DataFrame, loaded: dict, settings: dict, seed: int) -> pd.DataFrame:
    """Per target: the target-level p (Simes over its cells' deep and baseline p-values), its q
    (Benjamini-Hochberg across targets) and the verdict (legible when q is below the FDR level),
    every input set it is legible from, and the best input set: chosen in each fold on
    validation subjects, scored on the folds' test subjects (the pooled out-of-fold predictions
    of the chosen models)."""
    rows = []
    for target, models in performance.groupby("target", sort=False):
        metric, target_type = models["metric"].iloc[0], models["target_type"].iloc[0]
        choices, chosen = selected({m: loaded[m] for m in models["model"]}, metric)
        truth = chosen["true"].astype(float) if target_type == "continuous" else chosen["true"].astype(str)
        predicted = chosen["prediction"].astype(float) if target_type == "continuous" else chosen["prediction"].astype(str)
        interval = metrics.bootstrap_ci(target_type, truth.to_numpy(), predicted.to_numpy(), settings["bootstrap"],
                                        derive_seed(seed, target, "selected"), settings["confidence"])[metric]  # fmt: skip
        named = models.set_index("model")["cell"]
        picks = pd.Series([f"{named[m]} ({'model' if key == 'model' else 'baseline'})" for m, key in choices]).value_counts()
        legible = models[models["legible"] == "yes"].assign(best=lambda t: t[["score", "baseline_score"]].max(axis=1))
        mixed = models[models["comparator"].notna()]  # cells of imaging and metadata
        adds = mixed[mixed["adds_to_metadata"] == "yes"].sort_values("delta_score", ascending=False)
        brain = models[(models[list(IMAGING)] == "yes").any(axis=1)]
        beyond = brain[brain["beats_confounds"] == "yes"].sort_values("confounds_delta_score", ascending=False)
        rows.append({
            "target": target, "target_type": target_type, "metric": metric, "chance": models["chance"].max(),
            "p_value": simes(np.concatenate([models["p_value"], models["baseline_p_value"]])),
            "best_input_set": named[pd.Series([m for m, _ in choices]).mode().iloc[0]],
            "chosen": "; ".join(f"{name} in {n} of {len(choices)}" for name, n in picks.items()),
            "score": scored(target_type, chosen), "ci_low": interval[0], "ci_high": interval[1],
            "legible_from": ";".join(legible.sort_values("best", ascending=False)["cell"]),
            "imaging_adds": ("yes" if len(adds) else "no") if len(mixed) else None, "imaging_adds_from": ";".join(adds["cell"]),
            "beyond_confounds_from": ";".join(beyond["cell"]),
        })  # fmt: skip
        rows[-1]["score"] = rows[-1]["score"][metric]
    table = pd.DataFrame(rows)
    table["q_value"] = false_discovery_control(table["p_value"], method="bh")
    table["verdict"] = np.where(table["q_value"] < settings["fdr"], "legible", "not legible")
    columns = ["target", "target_type", "metric", "chance", "verdict", "p_value", "q_value", "legible_from", "best_input_set", "chosen",
               "score", "ci_low", "ci_high", "imaging_adds", "imaging_adds_from", "beyond_confounds_from"]  # fmt: skip
    return table[columns]


def _cells(table):
    """The grid's columns, in canonical input order."""
    return sorted(set(table["cell"]), key=lambda c: ([INPUT_ORDER.index(i) for i in c.split(" ")[0].split("+")], c))


def grid_figure(table: pd.DataFrame, best: dict = None):
    """Heatmap of the deep model's skill above chance, (score - chance) / (1 - chance): R² for
    regression and balanced accuracy rescaled from 1/K, so 0 is chance and 1 perfect for every
    target, with the baseline's score beneath; `best` (target -> input set) outlined, cells
    legible by neither model hatched, degenerate models crossed, and cells whose network does
    not beat the target's confounds-only model marked c."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    targets = list(dict.fromkeys(table["target"]))
    sets = _cells(table)
    skill = np.full((len(targets), len(sets)), np.nan)
    fig, ax = plt.subplots(figsize=(1.3 + 1.0 * len(sets), 1.2 + 0.6 * len(targets)))
    for row in table.itertuples():
        i, j = targets.index(row.target), sets.index(row.cell)
        skill[i, j] = metrics.skill(row.score, row.chance)
        ax.text(j, i - 0.1, f"{row.score:.2f}", ha="center", va="center", fontsize=8)
        ax.text(j, i + 0.22, f"({row.baseline_score:.2f})", ha="center", va="center", fontsize=6, color="dimgrey")
        if row.legible != "yes":
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0, edgecolor="grey"))
        if row.beats_confounds == "no":  # read by a confounds-only model as well
            ax.text(j + 0.45, i - 0.42, "c", ha="right", va="top", fontsize=7, color="black", style="italic")
        if isinstance(row.degenerate, str) and row.degenerate:
            ax.plot([j - 0.45, j + 0.45], [i - 0.45, i + 0.45], color="black", lw=0.8)
            ax.plot([j - 0.45, j + 0.45], [i + 0.45, i - 0.45], color="black", lw=0.8)
    image = ax.imshow(np.clip(skill, -1, 1), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for target, input_set in (best or {}).items():
        ax.add_patch(Rectangle((sets.index(input_set) - 0.5, targets.index(target) - 0.5), 1, 1, fill=False, lw=2.2, edgecolor="black"))
    metric_of = table.drop_duplicates("target").set_index("target")["metric"]
    ax.set_yticks(range(len(targets)), [f"{t} ({SHORT[metric_of[t]]})" for t in targets])
    ax.set_xticks(range(len(sets)), sets, rotation=45, ha="right")
    ax.set_title("Deep model (linear baseline); box: best input set, chosen on validation;\nhatched: not legible; crossed: degenerate; "
                 "c: no better than the confounds-only model", fontsize=9)  # fmt: skip
    fig.colorbar(image, ax=ax, label="skill above chance", shrink=0.8)
    return fig


def target_figure(table: pd.DataFrame, target: str):
    """One target's input sets: the deep model's and the baseline's scores with their
    confidence intervals, and chance; legible ones filled, degenerate ones marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = table[table["target"] == target].set_index("cell").loc[_cells(table[table["target"] == target])]
    y = np.arange(len(models))
    fig, ax = plt.subplots(figsize=(6.5, 1.2 + 0.5 * len(models)))
    for prefix, offset, colour, name in (("", -0.12, "tab:blue", "model"), ("baseline_", 0.12, "tab:orange", "linear baseline")):
        score = models["score" if not prefix else "baseline_score"]
        legible = (models[f"{'model' if not prefix else 'baseline'}_legible"] == "yes").to_numpy()
        error = np.clip([score - models[f"{prefix}ci_low"], models[f"{prefix}ci_high"] - score], 0, None)
        ax.errorbar(score, y + offset, xerr=error, fmt="none", ecolor=colour, capsize=3)
        ax.scatter(score[legible], (y + offset)[legible], color=colour, zorder=3, label=f"{name} (legible)")
        ax.scatter(score[~legible], (y + offset)[~legible], facecolor="white", edgecolor=colour, zorder=3, label=f"{name} (not legible)")
    for i, reason in enumerate(models["degenerate"].fillna("")):
        if reason:
            ax.annotate("degenerate", (models["score"].iloc[i], y[i] - 0.12), fontsize=7, color="black", xytext=(4, -10),
                        textcoords="offset points")  # fmt: skip
    ax.axvline(models["chance"].iloc[0], color="grey", ls="--", lw=1, label="chance")
    metric = models["metric"].iloc[0]
    ax.set(yticks=y, yticklabels=models.index, xlabel=f"{metric.replace('_', ' ')} on unseen subjects (bootstrap confidence interval)",
           title=target)  # fmt: skip
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="best")
    return fig


def curve_figure(title, folds: dict, metric: str):
    """Per fold (fold -> metrics.json): training and validation loss per epoch, the validation
    metric, and the epoch kept (dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss, score) = plt.subplots(1, 2, figsize=(9, 3.5))
    for (fold, summary), colour in zip(folds.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"] * len(folds)):
        history = summary["history"]
        epochs = [h["epoch"] for h in history]
        loss.plot(epochs, [h["train_loss"] for h in history], color=colour, alpha=0.5)
        loss.plot(epochs, [h["val_loss"] for h in history], color=colour, label=f"{fold} (kept: epoch {summary['best_epoch']})")
        score.plot(epochs, [h["val_metric"] for h in history], color=colour)
        for ax in (loss, score):
            ax.axvline(summary["best_epoch"], color=colour, ls=":", lw=1)
    loss.set(xlabel="epoch (0: the linear start)", ylabel="loss (faint: training, solid: validation)")
    loss.legend(fontsize="small")
    score.set(xlabel="epoch", ylabel=f"validation {metric.replace('_', ' ')}")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def predictions_figure(title, target_type, target, predictions):
    """Predictions of the model and its linear baseline against the truth, on subjects neither saw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.5, 4))
    for ax, column, name in zip(axes, ("prediction", "baseline_prediction"), ("model", "linear baseline")):
        if target_type == "continuous":
            ax.scatter(predictions["true"], predictions[column], s=12)
            low, high = float(np.nanmin(predictions[["true", column]])), float(np.nanmax(predictions[["true", column]]))
            ax.plot([low, high], [low, high], color="grey", lw=1)
            ax.set(xlabel=f"true {target}", ylabel="predicted", title=name)
            continue
        levels = sorted(set(predictions["true"]) | set(predictions[column]))
        counts = predictions.groupby(["true", column]).size().unstack(fill_value=0).reindex(index=levels, columns=levels, fill_value=0)
        ax.imshow(counts.to_numpy(), cmap="Blues")
        for (i, j), n in np.ndenumerate(counts.to_numpy()):
            ax.text(j, i, str(n), ha="center", va="center")
        ax.set(xticks=range(len(levels)), xticklabels=levels, yticks=range(len(levels)), yticklabels=levels,
               xlabel="predicted", ylabel="true", title=name)  # fmt: skip
    fig.suptitle(title)
    fig.tight_layout()
    return fig
