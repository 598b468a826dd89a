"""The grid's verdicts: the performance table (one row per model, with bootstrap intervals,
permutation p-values and false-discovery-rate q-values), each target's legibility, and the
figures (grid heatmap, one plot per target)."""

import json

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

from . import metrics
from .grid import INPUT_ORDER
from .io import read_tsv
from .seeds import derive_seed

LEAD_COLUMNS = ["model", "target", "target_type", "input_set", *INPUT_ORDER, "resolution", "kind", "n_train", "n_val",
                "n_test", "metric", "score", "ci_low", "ci_high", "p_value", "q_value", "legible", "chance", "baseline_score"]  # fmt: skip
TAIL_COLUMNS = ["n_parameters", "epochs", "best_epoch", "wall_seconds", "device"]
SHORT = {"balanced_accuracy": "BA", "r2": "R²"}


def model_row(result: dict, predictions: pd.DataFrame, settings: dict, seed: int) -> dict:
    """One model's row: metrics.json flattened, with its test-set intervals and p-value."""
    metric, kind = metrics.headline(result["target_type"]), result["target_type"]
    test = predictions[predictions["split"] == "test"]
    truth, predicted = test["true"].to_numpy(), test["prediction"].to_numpy()
    if kind == "continuous":
        truth, predicted = truth.astype(float), predicted.astype(float)
    intervals = metrics.bootstrap_ci(kind, truth, predicted, settings["bootstrap"], derive_seed(seed, result["model"], "bootstrap"),
                                     settings["confidence"])  # fmt: skip
    return {
        **{k: result[k] for k in ("model", "target", "target_type", "kind", "n_train", "n_val", "n_test")},
        "input_set": "+".join(result["inputs"]),
        **{i: "yes" if i in result["inputs"] else "no" for i in INPUT_ORDER},
        "resolution": result["resolution"],
        "metric": metric,
        "score": result["test"][metric],
        "ci_low": intervals[metric][0],
        "ci_high": intervals[metric][1],
        "p_value": metrics.permutation_p(kind, truth, predicted, settings["permutations"], derive_seed(seed, result["model"], "permutation")),
        "chance": result["chance"],
        "baseline_score": result["baseline"]["test"][metric],
        **result["test"],
        **({"mae_ci_low": intervals["mae"][0], "mae_ci_high": intervals["mae"][1]} if "mae" in intervals else {}),
        **{f"baseline_{k}": v for k, v in result["baseline"]["test"].items()},
        "baseline_method": result["baseline"]["method"],
        **{k: result[k] for k in TAIL_COLUMNS},
    }


def performance_table(model_dirs, settings: dict, seed: int) -> pd.DataFrame:
    """One row per model folder; q-values over the whole grid (Benjamini-Hochberg); a model is
    legible when its interval's lower bound is above chance and its q-value below the FDR level."""
    rows = [model_row(json.loads(open(f"{d}/metrics.json").read()), read_tsv(f"{d}/predictions.tsv"), settings, seed) for d in model_dirs]
    table = pd.DataFrame(rows)
    table["q_value"] = false_discovery_control(table["p_value"], method="bh")
    table["legible"] = np.where((table["ci_low"] > table["chance"]) & (table["q_value"] < settings["fdr"]), "yes", "no")
    table["resolution"] = table["resolution"].astype("Int64")
    middle = [c for c in table.columns if c not in LEAD_COLUMNS + TAIL_COLUMNS]
    return table[LEAD_COLUMNS + middle + TAIL_COLUMNS]


def legibility_table(performance: pd.DataFrame) -> pd.DataFrame:
    """Per target: its best input set (highest test score) and whether the target is legible,
    i.e. legible from at least one input set (listed in `legible_from`)."""
    rows = []
    for target, models in performance.groupby("target", sort=False):
        best = models.loc[models["score"].idxmax()]
        legible = models.loc[models["legible"] == "yes"].sort_values("score", ascending=False)
        rows.append({
            "target": target, "target_type": best["target_type"], "metric": best["metric"], "chance": best["chance"],
            "best_input_set": best["input_set"], "score": best["score"], "ci_low": best["ci_low"], "ci_high": best["ci_high"],
            "q_value": best["q_value"], "baseline_score": best["baseline_score"],
            "verdict": "legible" if len(legible) else "not legible", "legible_from": ";".join(legible["input_set"]),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _input_sets(table):
    return sorted(set(table["input_set"]), key=lambda s: [INPUT_ORDER.index(i) for i in s.split("+")])


def grid_figure(table: pd.DataFrame):
    """Heatmap of skill above chance, (score - chance) / (1 - chance): R² for regression and
    balanced accuracy rescaled from 1/K, so 0 is chance and 1 perfect for every target; each
    target's best input set is outlined, cells not legible are hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    targets = list(dict.fromkeys(table["target"]))
    sets = _input_sets(table)
    skill = np.full((len(targets), len(sets)), np.nan)
    text = np.full(skill.shape, "", dtype=object)
    fig, ax = plt.subplots(figsize=(1.3 + 0.9 * len(sets), 1.2 + 0.5 * len(targets)))
    for row in table.itertuples():
        i, j = targets.index(row.target), sets.index(row.input_set)
        skill[i, j] = (row.score - row.chance) / (1 - row.chance)
        text[i, j] = f"{row.score:.2f}"
        if row.legible != "yes":
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0, edgecolor="grey"))
    image = ax.imshow(np.clip(skill, -1, 1), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for (i, j), label in np.ndenumerate(text):
        ax.text(j, i, label, ha="center", va="center", fontsize=8)
    for i in range(len(targets)):
        if np.isfinite(skill[i]).any():
            j = int(np.nanargmax(skill[i]))
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.2, edgecolor="black"))
    metric_of = table.drop_duplicates("target").set_index("target")["metric"]
    ax.set_yticks(range(len(targets)), [f"{t} ({SHORT[metric_of[t]]})" for t in targets])
    ax.set_xticks(range(len(sets)), sets, rotation=45, ha="right")
    ax.set_title("Test performance (box: best input set per target; hatched: not legible)")
    fig.colorbar(image, ax=ax, label="skill above chance", shrink=0.8)
    return fig


def target_figure(table: pd.DataFrame, target: str):
    """One target's input sets: test score with its confidence interval, the linear baseline
    and chance; legible input sets filled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = table[table["target"] == target].set_index("input_set").loc[_input_sets(table[table["target"] == target])]
    y = np.arange(len(models))
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.4 * len(models)))
    legible = (models["legible"] == "yes").to_numpy()
    error = [models["score"] - models["ci_low"], models["ci_high"] - models["score"]]
    ax.errorbar(models["score"], y, xerr=np.clip(error, 0, None), fmt="none", ecolor="black", capsize=3)
    ax.scatter(models["score"][legible], y[legible], color="tab:blue", zorder=3, label="model (legible)")
    ax.scatter(models["score"][~legible], y[~legible], facecolor="white", edgecolor="tab:blue", zorder=3, label="model (not legible)")
    ax.scatter(models["baseline_score"], y, marker="x", color="tab:orange", zorder=3, label="linear baseline")
    ax.axvline(models["chance"].iloc[0], color="grey", ls="--", lw=1, label="chance")
    metric = models["metric"].iloc[0]
    ax.set(yticks=y, yticklabels=models.index, xlabel=f"test {metric.replace('_', ' ')} (bootstrap confidence interval)", title=target)
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="best")
    return fig
