"""Predict mode: a bundle's model on new subjects. Their inputs are rebuilt as the model's
training job built its test subjects': every scaling is the one fitted on the bundle's
training subjects (its card), never refitted on the new cohort, and the network adds to the
bundle's own linear baseline."""

import numpy as np
import pandas as pd

from . import MODALITIES, bundle
from .grid import ModelSpec
from .io import read_tsv
from .shards import open_packed

# torch and scikit-learn (data, baseline, train) are imported where a prediction is made: the
# Snakefile imports this module for `adopt` at every parse, in every job a cluster runs


def rescale(values, scaling: dict):
    """The training split's standardisation (data.standardise) applied to other subjects."""
    return np.nan_to_num((values - np.array(scaling["mean"])) / np.array(scaling["std"])).astype(np.float32)


def check(card: dict, variables: dict, templates: dict) -> None:
    """Stops, naming the bundle's need, where this config cannot feed the bundle."""
    from . import BOLD

    where = f"bundle {card['model']}"
    spec = ModelSpec.from_dict(card["spec"])
    missing = [m for m in spec.raw_modalities if m not in templates and not (m == BOLD and "connectome" in templates)]
    if missing:
        raise ValueError(f"{where} reads {', '.join(missing)}, and inputs.templates has no template for it")
    for name, declared in card["variables_read"].items():
        if name not in variables:
            raise ValueError(f"{where} reads the variable {name!r}, which phenotypes.variables does not declare")
        if {k: v for k, v in variables[name].items() if k in ("type", "levels")} != {k: v for k, v in declared.items() if k in ("type", "levels")}:
            raise ValueError(f"{where} reads {name!r} as {declared}; this config declares it as {variables[name]}")
    if spec.deconfound and spec.confounds:
        raise ValueError(f"{where} learnt deconfounded inputs, whose confound regression a bundle does not hold yet")
    if spec.uses_connectivity and card["preprocessing"]["connectivity"]["kind"] == "tangent":
        raise ValueError(f"{where} reads tangent-space connectivity, centred on its training cohort's mean, which a bundle does not hold yet")


def inputs(spec, fitted: dict, subjects: list, sources: dict, phenotypes, variables: dict):
    """(SubjectDataset of `subjects`, the baseline's features X): as training built its test split."""
    from .data import ImageReader, SubjectDataset, _index, metadata_columns

    images, parts = None, []
    if spec.images:
        originals = _index(read_tsv(sources["preprocess"]))
        images = ImageReader(originals, {}, [MODALITIES.index(m) for m in spec.images], 0)
        regions = read_tsv(sources["regions"]).set_index(["subject", "modality"])
        columns = [f"{m}:{c}" for m in spec.images for c in regions.columns]
        if columns != fitted["regions"]["columns"]:
            raise ValueError(f"{spec.name}: {len(columns)} region means per subject here, {len(fitted['regions']['columns'])} in the bundle (another baseline atlas)")
        table = np.hstack([regions.loc[[(s, m) for s in subjects]].to_numpy(float) for m in spec.images])
        parts.append(rescale(table, fitted["regions"]))
    vectors = {}
    for name in spec.vectors:  # connectivity, MIND
        index = _index(read_tsv(sources[name]), status_column="status")
        rows = np.stack([np.asarray(open_packed(index[s][0])[index[s][1]], dtype=np.float64) for s in subjects])
        if rows.shape[1] != len(fitted[name]["mean"]):
            raise ValueError(f"{spec.name}: {rows.shape[1]} {name} features per subject here, {len(fitted[name]['mean'])} in the bundle (another atlas)")
        vectors[name] = rescale(rows, fitted[name])
    if spec.reads_metadata:
        table = metadata_columns(phenotypes, variables)
        vectors["metadata"] = rescale(table.loc[subjects, fitted["metadata"]["columns"]].to_numpy(dtype=float), fitted["metadata"])
    parts += list(vectors.values())
    X = np.hstack(parts).astype(np.float64)
    return SubjectDataset(subjects, np.zeros(len(subjects), np.float32), images=images, vectors=vectors), X


def run(path, fold, subjects, sources, phenotypes, variables, threads=1):
    """Predictions of a bundle's `fold` model for `subjects` (a frame: subject, prediction,
    score, class probabilities, and the baseline's), on the job's GPU where it has one."""
    import torch

    torch.set_num_threads(threads)

    from . import baseline, train

    card, states = bundle.read(path)
    spec, fitted, state = ModelSpec.from_dict(card["spec"]), card["folds"][fold]["fitted"], states[fold]
    levels = {**phenotypes.levels, spec.target: card["target"].get("levels", [])}
    dataset, X = inputs(spec, fitted, subjects, sources, phenotypes, variables)
    linear = baseline.outputs_of(spec, fitted["baseline"], X, len(levels[spec.target]))
    spread = fitted.get("spread")
    dataset.vectors["offset"] = (train.soft_label_loss(fitted).logits_around(linear[:, 0], spread) if spread is not None else linear).astype(np.float32)
    model = train.build_model(spec, {"train": dataset}, levels, fitted, (state["linear.weight"], state["linear.bias"]))
    model.load_state_dict(state)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    outputs = train.predict(model.to(device), dataset, device)
    frame = {"subject": subjects}
    for prefix, out in (("", outputs), ("baseline_", linear)):
        predicted, score, probabilities = train.outputs_to_predictions(spec, out, fitted, levels)
        if spec.target_type == "continuous":
            frame.update({f"{prefix}prediction": predicted, f"{prefix}score": score})
        else:
            names = levels[spec.target]
            frame.update({f"{prefix}prediction": [names[i] for i in predicted], f"{prefix}score": score})
            frame.update({f"{prefix}p_{level}": probabilities[:, i] for i, level in enumerate(names)})
    return pd.DataFrame(frame)



def adopt(config: dict, written: dict) -> dict:
    """Predict mode's settings: every preprocessing setting of each bundle in
    config["predict"]["bundles"] replaces the config's (so the new cohort is prepared as the
    bundle's training cohort was); one this config file sets otherwise (`written`, before the
    schema's defaults) stops the run, naming the setting. Returns {model: (path, card)}."""
    from .grid import ConfigError

    found, adopted = {}, {}
    for path in config["predict"]["bundles"]:
        try:
            card = bundle.read_card(path)
            check(card, config["phenotypes"]["variables"], config["inputs"]["templates"])
        except (OSError, KeyError, ValueError) as error:
            raise ConfigError(f"predict.bundles: {path}: {error}") from None
        for section, value in card["preprocessing"].items():
            name, own = ("inputs.space", written.get("inputs", {}).get("space")) if section == "space" else (section, written.get(section))
            settings = {"": own} if section == "space" else (own or {})
            for key, mine in settings.items():
                theirs = value if section == "space" else value.get(key, mine)
                if mine is not None and mine != theirs:
                    setting = name if section == "space" else f"{section}.{key}"
                    raise ConfigError(f"predict.bundles: {path} was trained with {setting} = {theirs!r}; this config sets {mine!r}")
            if adopted.get(section, (None, value))[1] != value:
                raise ConfigError(f"predict.bundles: {path} and {adopted[section][0]} were trained with different {name} settings")
            adopted[section] = (path, value)
            if section == "space":
                config["inputs"]["space"] = value
            else:
                config[section] = value
        found[card["model"]] = (path, card)
    return found


def pooled(frames: list, target_type: str, levels: list):
    """One prediction per subject from a bundle's folds: the mean prediction, or for classes
    the mean probabilities and the likeliest class (a single fold's as it is)."""
    if len(frames) == 1:
        return frames[0]
    out = frames[0].copy()
    for prefix in ("", "baseline_"):
        columns = [f"{prefix}score"] + ([f"{prefix}prediction"] if target_type == "continuous" else [f"{prefix}p_{level}" for level in levels])
        out[columns] = sum(f[columns].to_numpy(float) for f in frames) / len(frames)
        if target_type != "continuous":
            p = out[[f"{prefix}p_{level}" for level in levels]].to_numpy()
            out[f"{prefix}prediction"] = [levels[i] for i in p.argmax(axis=1)]
            out[f"{prefix}score"] = p.max(axis=1) if len(levels) > 2 else p[:, 1]
    return out
