"""The study's analyses of the grid, after its performance table: what each input adds to
out-of-sample performance (linear mixed-effects models, one per target domain), the network of
the targets themselves (their mutual information, and how alike their score profiles are), what
training cost per input set, and the cohort's mean images.

Each returns a table that says, where the grid is too small for the analysis, why it was not
made; each figure says the same instead of failing the run."""

import textwrap
import warnings

import numpy as np
import pandas as pd

from . import BLOCKS, metrics
from .grid import INPUT_ORDER
from .seeds import derive_seed
from .splits import fold_roles

DOMAINS = BLOCKS  # a target's domain is its variable's block (constitutional, serology, ...)
EFFECT_COLUMNS = ["domain", "term", "coef", "se", "z", "p_value", "stars", "n_models", "n_targets", "note"]


def stars(p) -> str:
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def estimable(design: pd.DataFrame) -> tuple:
    """The columns of a 0/1 design that add to its rank, in order (with an intercept), and a
    note on each left out: an input always used, never used, or always used with another is
    not separable from them."""
    kept, notes = [], []
    for column in design.columns:
        trial = np.column_stack([np.ones(len(design)), design[kept + [column]].to_numpy(float)])
        if np.linalg.matrix_rank(trial) > len(kept) + 1:
            kept.append(column)
        elif design[column].nunique() == 1:
            notes.append(f"{column}: {'every' if design[column].iloc[0] else 'no'} model reads it")
        else:
            notes.append(f"{column}: not separable from {', '.join(kept) or 'the intercept'}")
    return kept, notes


def domain_effects(performance: pd.DataFrame, variables: dict) -> pd.DataFrame:
    """Per target domain, a linear mixed-effects model (statsmodels MixedLM, REML) of each
    model's out-of-sample score (balanced accuracy or R²) on which inputs it read (0/1 each),
    with a random intercept per target: a coefficient is what reading that input adds to the
    score, the target held fixed. A domain too small for the model gets a row saying why."""
    import statsmodels.api as sm

    rows = []
    domain_of = performance["target"].map(lambda t: variables[t]["block"])
    for domain in DOMAINS:
        models = performance[domain_of == domain]
        base = {"domain": domain, "n_models": len(models), "n_targets": models["target"].nunique()}
        if base["n_targets"] < 2:
            rows.append({**base, "term": None, "note": f"{base['n_targets']} target(s) in this domain: a random intercept per target needs two"})
            continue
        design = (models[list(INPUT_ORDER)] == "yes").astype(float)
        terms, notes = estimable(design)
        if not terms or len(models) <= len(terms) + 2:
            rows.append({**base, "term": None, "note": "; ".join(notes + [f"{len(models)} models: too few for {len(terms)} input effects"])})
            continue
        exog = sm.add_constant(design[terms], has_constant="add")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = sm.MixedLM(models["score"].to_numpy(float), exog, groups=models["target"].to_numpy()).fit(reml=True)
        said = "; ".join(notes + sorted({str(w.message).splitlines()[0] for w in caught}))
        for term in terms:
            p = float(fit.pvalues[term])
            rows.append({**base, "term": term, "coef": float(fit.params[term]), "se": float(fit.bse[term]), "z": float(fit.tvalues[term]),
                         "p_value": p, "stars": stars(p), "note": said})  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=EFFECT_COLUMNS)


def domain_effects_figure(effects: pd.DataFrame):
    """One panel per domain: each input's coefficient with its 95% interval (1.96 standard
    errors) and significance stars; a domain without a model says why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(DOMAINS), figsize=(3.2 * len(DOMAINS), 3.4), squeeze=False)
    for ax, domain in zip(axes[0], DOMAINS):
        rows = effects[(effects["domain"] == domain) & effects["term"].notna()]
        ax.set_title(domain, fontsize=10)
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        if rows.empty:
            why = effects.loc[effects["domain"] == domain, "note"].fillna("").iloc[0].split("; ")[-1]  # the reason it was not fitted
            ax.text(0.5, 0.5, "no model:\n" + textwrap.fill(why, 28), ha="center", va="center", fontsize=7, transform=ax.transAxes)
            ax.set(xticks=[], yticks=[])
            continue
        y = np.arange(len(rows))
        ax.errorbar(rows["coef"], y, xerr=1.96 * rows["se"], fmt="o", color="tab:blue", capsize=3)
        for i, row in enumerate(rows.itertuples()):
            ax.annotate(row.stars, (row.coef, i), xytext=(0, 5), textcoords="offset points", ha="center", fontsize=9)
        ax.set(yticks=y, yticklabels=rows["term"], xlabel="effect on the score")
        ax.invert_yaxis()
    fig.suptitle("What each input adds to out-of-sample performance (mixed model, random intercept per target;"
                 " * p<0.05, ** p<0.01, *** p<0.001)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig


def mutual_information(values: pd.DataFrame, types: dict, splits: pd.DataFrame, folds: list, n_folds, neighbors: int, seed: int,
                       permutations: int = 0) -> tuple:
    """Pairwise mutual information (nats) between targets, scikit-learn's nearest-neighbour
    estimators (mutual_info_classif for a discrete target, mutual_info_regression for a
    continuous one, each told whether the other is discrete), made symmetric by averaging both
    directions. Each direction x -> y reads the training subjects of y, fold by fold (averaged
    over folds), as a model of y would: a representative sample of the cohort, where the
    subjects that train for both targets are not (each target's split is stratified on its own
    draw, so their overlap varies from stratum to stratum and would make, say, age and sex look
    dependent). No subject that trains for neither target is read.

    The estimators are biased upwards on small samples (two independent variables of 50
    subjects give about 0.05 nats), so with `permutations` each pair is also estimated with one
    target shuffled: returns (MI, the permutations' mean MI, the permutation p-value), NaN
    where there were no permutations."""
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    targets = list(values.columns)
    roles = {(t, f): set(fold_roles(splits[splits["target"] == t], f, n_folds).query("split == 'train'")["subject"]) for t in targets for f in folds}
    mi, null, p = (pd.DataFrame(np.nan, index=targets, columns=targets) for _ in range(3))

    def directions(a, b, fold):
        """Both directions as (x, y, x's values, y's values), each on the training subjects of
        the one predicted (y), or None with too few: selected once for all of a pair's shuffles."""
        pairs = []
        for x, y in ((a, b), (b, a)):
            pair = values.loc[values.index.intersection(sorted(roles[y, fold])), [x, y]].dropna()
            if len(pair) < neighbors + 2:
                return None
            pairs.append((x, y, pair[[x]].to_numpy(), pair[y].to_numpy()))
        return pairs

    def estimate(pairs, fold, draw=None):
        """MI of a pair, the mean of both directions (y shuffled by `draw`, for the chance level)."""
        one_way = []
        for x, y, features, truth in pairs:
            truth = truth if draw is None else draw.permutation(truth)
            estimator = mutual_info_regression if types[y] == "continuous" else mutual_info_classif
            one_way.append(estimator(features, truth, discrete_features=[types[x] != "continuous"], n_neighbors=neighbors,
                                     random_state=derive_seed(seed, "mutual information", x, y, fold) % 2**32)[0])  # fmt: skip
        return np.mean(one_way)

    for i, a in enumerate(targets):
        mi.loc[a, a] = 0.0
        for b in targets[i + 1 :]:
            observed, shuffled = [], []
            for fold in folds:
                pairs = directions(a, b, fold)
                if pairs is None:
                    continue
                observed.append(estimate(pairs, fold))
                draw = np.random.default_rng(derive_seed(seed, "mutual information null", a, b, fold))
                shuffled.append([estimate(pairs, fold, draw) for _ in range(permutations)])
            if observed:
                mi.loc[a, b] = mi.loc[b, a] = np.mean(observed)
            if observed and permutations:
                draws = np.mean(shuffled, axis=0)  # each permutation's MI, averaged over folds as the observed one
                null.loc[a, b] = null.loc[b, a] = draws.mean()
                p.loc[a, b] = p.loc[b, a] = (1 + np.sum(draws >= mi.loc[a, b])) / (1 + permutations)
    return mi, null, p


def excess(mi: pd.DataFrame, null: pd.DataFrame) -> pd.DataFrame:
    """MI above what the permutations found by chance (0 at most chance), or MI as estimated
    where there were no permutations."""
    return (mi - null.fillna(0)).clip(lower=0)


def profile_similarity(performance: pd.DataFrame) -> pd.DataFrame:
    """How alike two targets' score profiles are: over the input sets (cells) both have, the
    mean of 1 / (1 + |skill difference|), skill being the score above chance; NaN where they
    share none."""
    skills = performance.assign(skill=metrics.skill(performance["score"], performance["chance"])).pivot_table(index="cell", columns="target", values="skill")
    targets = list(skills.columns)
    similarity = pd.DataFrame(np.nan, index=targets, columns=targets)
    for a in targets:
        for b in targets:
            shared = skills[[a, b]].dropna()
            if a != b and len(shared):
                similarity.loc[a, b] = float(np.mean(1 / (1 + np.abs(shared[a] - shared[b]))))
    return similarity


def centrality(weights: pd.DataFrame) -> pd.Series:
    """Weighted eigenvector centrality (networkx's power iteration on the whole graph: a
    component weaker than the strongest tends to 0); 0 for every target of a graph without edges."""
    import networkx as nx

    graph = graph_of(weights, share=1.0)
    found = nx.eigenvector_centrality(graph, max_iter=10_000, tol=1e-12, weight="weight") if graph.number_of_edges() else {}
    return pd.Series({t: abs(found.get(t, 0.0)) for t in weights.index})


def graph_of(weights: pd.DataFrame, share: float):
    """The targets as a networkx graph, keeping the strongest `share` of its finite, positive edges."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(weights.index)
    edges = [(a, b, float(weights.loc[a, b])) for i, a in enumerate(weights.index) for b in weights.index[i + 1 :]
             if np.isfinite(weights.loc[a, b]) and weights.loc[a, b] > 0]  # fmt: skip
    if edges:
        cut = np.quantile([w for *_, w in edges], 1 - share) if share < 1 else -np.inf
        graph.add_weighted_edges_from([e for e in edges if e[2] >= cut])
    return graph


def network_table(mi: pd.DataFrame, null: pd.DataFrame, p: pd.DataFrame, similarity: pd.DataFrame, best: pd.Series, share: float) -> pd.DataFrame:
    """Rows per target (node: its centrality, from MI above chance, and best score) and per pair
    (edge: MI, its permutation mean and p-value, profile similarity, and whether each is among
    the strongest `share` drawn)."""
    weights = excess(mi, null)
    central = centrality(weights)
    drawn_mi, drawn_sim = graph_of(weights, share), graph_of(similarity, share)
    rows = [{"kind": "node", "target": t, "other": None, "mi_centrality": central[t], "best_score": best.get(t, np.nan)} for t in mi.index]
    for i, a in enumerate(mi.index):
        for b in mi.index[i + 1 :]:
            rows.append({"kind": "edge", "target": a, "other": b, "mutual_information": mi.loc[a, b], "mi_null_mean": null.loc[a, b],
                         "mi_p_value": p.loc[a, b], "profile_similarity": similarity.loc[a, b] if {a, b} <= set(similarity.index) else np.nan,
                         "mi_drawn": drawn_mi.has_edge(a, b), "similarity_drawn": drawn_sim.has_edge(a, b)})  # fmt: skip
    columns = ["kind", "target", "other", "mi_centrality", "best_score", "mutual_information", "mi_null_mean", "mi_p_value", "profile_similarity",
               "mi_drawn", "similarity_drawn"]  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=columns)


def network_figure(mi: pd.DataFrame, null: pd.DataFrame, p: pd.DataFrame, similarity: pd.DataFrame, best: pd.Series, share: float, seed: int):
    """Two graphs of the targets on one layout: nodes sized by eigenvector centrality of the MI
    above chance, edges by it (dashed where the permutations found as much by chance, p ≥ 0.05);
    and nodes sized by each target's best score, edges by profile similarity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    if len(mi) < 2:
        for ax in axes:
            ax.text(0.5, 0.5, f"{len(mi)} target: no network to draw", ha="center", va="center", transform=ax.transAxes)
            ax.axis("off")
        return fig
    weights = excess(mi, null)
    layout = nx.spring_layout(graph_of(weights.fillna(0) + 1e-9, 1.0), weight="weight", seed=derive_seed(seed, "network layout") % 2**32)
    panels = (("MI above chance", graph_of(weights, share), 200 + 3000 * centrality(weights), "centrality"),
              ("score-profile similarity", graph_of(similarity.reindex(index=mi.index, columns=mi.index), share),
               200 + 1500 * best.reindex(mi.index).fillna(0).clip(lower=0), "best score"))  # fmt: skip
    for ax, (title, graph, node_size, nodes) in zip(axes, panels):
        edges = list(graph.edges(data=True))
        top = max([d["weight"] for *_, d in edges], default=1.0)
        nx.draw_networkx_nodes(graph, layout, ax=ax, node_size=[node_size[n] for n in graph.nodes], node_color="tab:blue", alpha=0.9)
        nx.draw_networkx_labels(graph, layout, ax=ax, font_size=8)
        for a, b, d in edges:
            chance = "MI" in title and not p.loc[a, b] < 0.05
            nx.draw_networkx_edges(graph, layout, edgelist=[(a, b)], ax=ax, width=0.5 + 5 * d["weight"] / top, edge_color="grey",
                                   style="dashed" if chance else "solid", alpha=0.5 if chance else 0.9)  # fmt: skip
        note = "; dashed: within chance (permutation p ≥ 0.05)" if "MI" in title else ""
        ax.set_title(f"Targets by {title}\n(nodes: {nodes}; top {share:.0%} of edges{note})", fontsize=9)
        ax.axis("off")
    return fig


def cost_table(runs: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Training cost per input set (cell) and device: jobs, mean wall seconds with a t interval,
    and total device hours (CPU hours count each thread)."""
    from scipy import stats

    rows = []
    for (cell, device), group in runs.groupby(["cell", "device"], sort=True):
        seconds = group["wall_seconds"].to_numpy(float)
        half = stats.t.ppf(0.5 + confidence / 2, len(seconds) - 1) * seconds.std(ddof=1) / np.sqrt(len(seconds)) if len(seconds) > 1 else np.nan
        hours = (group["wall_seconds"] * np.where(device == "cpu", group["threads"], 1)).sum() / 3600
        rows.append({"cell": cell, "device": device, "jobs": len(seconds), "mean_seconds": seconds.mean(), "ci_low": seconds.mean() - half,
                     "ci_high": seconds.mean() + half, "device_hours": hours, "max_rss_mb": group["max_rss_mb"].max()})  # fmt: skip
    return pd.DataFrame(rows)


def cost_figure(runs: pd.DataFrame, costs: pd.DataFrame, seed: int):
    """Training time per job by input set (strip plot, mean and interval) and device hours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(costs.groupby("cell")["mean_seconds"].mean().sort_values().index)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 1.5 + 0.35 * len(cells)), sharey=True)
    jitter = np.random.default_rng(derive_seed(seed, "cost jitter") % 2**32).uniform(-0.15, 0.15, len(runs))
    left.scatter(runs["wall_seconds"], runs["cell"].map(cells.index) + jitter, s=12, alpha=0.6, color="grey")
    for row in costs.itertuples():
        y = cells.index(row.cell)
        left.errorbar(row.mean_seconds, y, xerr=[[row.mean_seconds - row.ci_low], [row.ci_high - row.mean_seconds]] if np.isfinite(row.ci_low) else None,
                      fmt="D", color="tab:red", capsize=3)  # fmt: skip
    hours = costs.pivot_table(index="cell", columns="device", values="device_hours", aggfunc="sum").reindex(cells).fillna(0)
    offset = np.zeros(len(cells))
    for device in hours.columns:
        right.barh(range(len(cells)), hours[device], left=offset, label=f"{device} ({'CPU-thread' if device == 'cpu' else 'GPU'} hours)")
        offset += hours[device].to_numpy()
    left.set(yticks=range(len(cells)), yticklabels=cells, xlabel="training seconds per job (mean, 95% interval)")
    right.set(xlabel="device hours per input set")
    right.legend(fontsize=7)
    return fig


def mean_images(packed: list, tables: list) -> tuple:
    """({modality: the mean of its preprocessed cubes over the cohort}, {modality: how many})
    from each shard's packed array (subjects, modalities, size³) and index table."""
    from . import MODALITIES

    sums, counts = {}, {}
    for path, table in zip(packed, tables):
        array = np.load(path, mmap_mode="r")
        for row in table[table["status"] == "ok"].itertuples():
            channel = MODALITIES.index(row.modality)
            sums[row.modality] = sums.get(row.modality, 0) + array[int(row.row), channel].astype(np.float64)
            counts[row.modality] = counts.get(row.modality, 0) + 1
    return {m: (sums[m] / counts[m]).astype(np.float32) for m in MODALITIES if m in sums}, counts


def mean_images_figure(images: dict, counts: dict):
    """Each modality's cohort mean, three orthogonal slices (nilearn's plot_anat)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nilearn import plotting

    fig, axes = plt.subplots(len(images) or 1, 1, figsize=(8, 2.8 * max(len(images), 1)), squeeze=False)
    for ax, (modality, image) in zip(axes[:, 0], images.items()):
        plotting.plot_anat(image, axes=ax, cut_coords=(0, -17, 5), title=f"mean {modality} of {counts[modality]} subjects",
                           draw_cross=False, annotate=False, dim=0)  # fmt: skip
    if not images:
        axes[0, 0].text(0.5, 0.5, "no preprocessed image", ha="center", va="center")
        axes[0, 0].axis("off")
    return fig
