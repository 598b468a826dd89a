"""The performance table (one row per model) and the grid heatmap (targets x input sets)."""

import json

import numpy as np
import pandas as pd

from .grid import INPUT_ORDER
from .metrics import headline

LEAD_COLUMNS = ["model", "target", "target_type", "input_set", *INPUT_ORDER, "resolution", "kind",
                "n_train", "n_val", "n_test", "metric", "score", "baseline_score", "chance"]  # fmt: skip
TAIL_COLUMNS = ["n_parameters", "epochs", "best_epoch", "wall_seconds", "device"]


def performance_table(metrics_paths) -> pd.DataFrame:
    rows = []
    for path in metrics_paths:
        result = json.loads(open(path).read())
        metric = headline(result["target_type"])
        row = {
            **{k: result[k] for k in ("model", "target", "target_type", "kind", "n_train", "n_val", "n_test")},
            "input_set": "+".join(result["inputs"]),
            **{i: "yes" if i in result["inputs"] else "no" for i in INPUT_ORDER},
            "resolution": result["resolution"],
            "metric": metric,
            "score": result["test"][metric],
            "baseline_score": result["baseline"]["test"][metric],
            "chance": result["chance"],
            **result["test"],
            **{k: result[k] for k in TAIL_COLUMNS},
        }
        rows.append(row)
    table = pd.DataFrame(rows)
    middle = [c for c in table.columns if c not in LEAD_COLUMNS + TAIL_COLUMNS]
    table["resolution"] = table["resolution"].astype("Int64")
    return table[LEAD_COLUMNS + middle + TAIL_COLUMNS]


def grid_figure(table: pd.DataFrame):
    """Heatmap of skill above chance, (score - chance) / (1 - chance): R² for regression and
    balanced accuracy rescaled from 1/K, so 0 is chance and 1 perfect for every target; each
    target's best input set is outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    targets = list(dict.fromkeys(table["target"]))
    sets = sorted(set(table["input_set"]), key=lambda s: [INPUT_ORDER.index(i) for i in s.split("+")])
    skill = np.full((len(targets), len(sets)), np.nan)
    text = np.full(skill.shape, "", dtype=object)
    for row in table.itertuples():
        i, j = targets.index(row.target), sets.index(row.input_set)
        skill[i, j] = (row.score - row.chance) / (1 - row.chance)
        text[i, j] = f"{row.score:.2f}"
    fig, ax = plt.subplots(figsize=(1.3 + 0.9 * len(sets), 1.2 + 0.5 * len(targets)))
    image = ax.imshow(np.clip(skill, -1, 1), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for (i, j), label in np.ndenumerate(text):
        ax.text(j, i, label, ha="center", va="center", fontsize=8)
    for i in range(len(targets)):
        if np.isfinite(skill[i]).any():
            j = int(np.nanargmax(skill[i]))
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.2, edgecolor="black"))
    metric_of = table.drop_duplicates("target").set_index("target")["metric"]
    short = {"balanced_accuracy": "BA", "r2": "R²"}
    ax.set_yticks(range(len(targets)), [f"{t} ({short[metric_of[t]]})" for t in targets])
    ax.set_xticks(range(len(sets)), sets, rotation=45, ha="right")
    ax.set_title("Test performance (box: best input set per target)")
    fig.colorbar(image, ax=ax, label="skill above chance", shrink=0.8)
    return fig
