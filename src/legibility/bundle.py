"""A trained model as one archive another lab can use: its weights per fold and a model card
(JSON, with a Markdown rendering) naming everything that shaped its inputs, what was fitted,
on whom, how well it did and with which software.

The archive (`results/bundles/<model>.tar`) holds `card.json`, `card.md` and `<fold>/model.pt`
(plain tensors: torch.load(..., weights_only=True)). Its members carry no time stamps, so the
same model gives the same bytes.
"""

import hashlib
import io
import json
import tarfile

FORMAT = 1  # of the card; a reader refuses other versions
# the config sections that shaped each kind of input (the effective config's, as it ran)
SECTIONS = {
    "images": ("skullstrip", "registration", "qc", "preprocess", "augment", "baseline"),
    "connectivity": ("qc", "atlas", "connectivity"),
    "mind": ("skullstrip", "registration", "qc", "preprocess", "mind"),
}
ATLASES = {"images": "baseline", "connectivity": "atlas", "mind": "mind"}  # results/atlas/<name>.nii.gz


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def input_kinds(summary: dict) -> list:
    from . import MIND, MODALITIES

    inputs = set(summary["inputs"])
    return [k for k, found in (("images", inputs & set(MODALITIES)), ("connectivity", "connectivity" in inputs), ("mind", MIND in inputs)) if found]


def card(folds: dict, weights: dict, config: dict, performance_row: dict, atlases: dict) -> dict:
    """The model card from each fold's metrics.json ({fold: dict}) and weights ({fold: bytes}),
    the effective config, the model's row of performance.tsv and {atlas name: file bytes}."""
    first = next(iter(folds.values()))
    kinds = input_kinds(first)
    declared = config["phenotypes"]["variables"]
    preprocessing = {section: config[section] for kind in kinds for section in SECTIONS[kind]}
    if kinds:
        preprocessing["space"] = config["inputs"]["space"]
    atlas_settings = {"baseline": config["baseline"]["atlas"], "atlas": config["atlas"], "mind": config["mind"]["atlas"]}
    return {
        "format": FORMAT,
        "model": first["model"],
        "target": {"name": first["target"], "type": first["target_type"], **declared[first["target"]]},
        "inputs": first["inputs"],
        "resolution": first["resolution"],
        "kind": first["kind"],
        "variables_read": {name: declared[name] for name in first["variables_read"]},
        "confounds": {"variables": first["confounds"], "deconfound": first["deconfound"]},
        "preprocessing": preprocessing,
        # a connectivity model read from matrices given as input has no atlas file of ours
        "atlases": {ATLASES[k]: {**({"sha256": sha256(atlases[ATLASES[k]])} if ATLASES[k] in atlases else {}), **atlas_settings[ATLASES[k]]}
                    for k in kinds},  # fmt: skip
        "spec": first["provenance"]["spec"],  # the network and its training, as grid.ModelSpec
        "split": {"settings": config["split"], "seed": config["seed"]},
        "folds": {
            fold: {"n_train": m["n_train"], "n_val": m["n_val"], "n_test": m["n_test"], "split_sha256": m["provenance"]["split_sha256"],
                   "best_epoch": m["best_epoch"], "fitted": m["fitted"], "val": m["val"], "test": m["test"],
                   "weights": f"{fold}/model.pt", "weights_sha256": sha256(weights[fold])}
            for fold, m in folds.items()
        },  # fmt: skip
        "performance": performance_row,  # pooled over folds, with the bootstrap interval
        "software": {key: first["provenance"][key] for key in ("packages", "python", "git_commit")},
    }


def _number(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"  # no interval on too few test subjects


def markdown(card: dict) -> str:
    p, target = card["performance"], card["target"]
    levels = f", levels {', '.join(map(str, target['levels']))}" if "levels" in target else ""
    grid = f" at {card['resolution']}³" if card["resolution"] else ""
    trained = "; ".join(f"{fold}: {m['n_train']} train, {m['n_val']} val" for fold, m in card["folds"].items())
    atlases = ", ".join(f"{name} (sha256 {a['sha256'][:12]}…)" if "sha256" in a else name for name, a in card["atlases"].items()) or "none"
    weights = ", ".join(f"`{m['weights']}` (sha256 {m['weights_sha256'][:12]}…)" for m in card["folds"].values())
    return "\n".join([
        f"# {card['model']}",
        "",
        f"Predicts **{target['name']}** ({target['type']}{levels}) from {', '.join(card['inputs'])}{grid} ({card['kind']}).",
        "",
        f"- {p['metric']}: {_number(p['score'])} [{_number(p['ci_low'])}, {_number(p['ci_high'])}] on {p['n_test']} subjects it never saw"
        f" (linear baseline {_number(p['baseline_score'])}, chance {_number(p['chance'])})",
        f"- trained on {trained}",
        f"- metadata read: {', '.join(card['variables_read']) or 'none'}",
        f"- atlases: {atlases}",
        f"- software: legibility at commit {card['software']['git_commit']}, Python {card['software']['python']}",
        "",
        f"Preprocessing settings, fitted scalings and each fold's metrics: `card.json`. Weights: {weights}.",
        "",
    ])  # fmt: skip


def write(path, card: dict, weights: dict) -> None:
    """The archive at `path` (written whole, then renamed: never a partial bundle)."""
    from .io import atomic_path

    members = {"card.json": (json.dumps(card, indent=2, sort_keys=True, default=str) + "\n").encode(), "card.md": markdown(card).encode()}
    members.update({f"{fold}/model.pt": data for fold, data in weights.items()})
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644  # no time stamp, owner or group: the same model, the same bytes
            archive.addfile(info, io.BytesIO(data))


def read_card(path) -> dict:
    """A bundle's card alone (the weights stay in the archive); refuses another card format."""
    with tarfile.open(path) as archive:
        card = json.loads(archive.extractfile("card.json").read())
    if card.get("format") != FORMAT:
        raise ValueError(f"{path}: bundle format {card.get('format')!r}, this legibility reads format {FORMAT}")
    return card


def read(path) -> tuple:
    """(card, {fold: state dict}) of a bundle; refuses another card format and weights whose
    SHA-256 is not the card's."""
    import torch

    card = read_card(path)
    with tarfile.open(path) as archive:
        states = {}
        for fold, entry in card["folds"].items():
            data = archive.extractfile(entry["weights"]).read()
            if sha256(data) != entry["weights_sha256"]:
                raise ValueError(f"{path}: {entry['weights']} does not match the SHA-256 in its card")
            states[fold] = torch.load(io.BytesIO(data), weights_only=True)
    return card, states


def initialise(model, path, log) -> dict:
    """Start `model` from a bundle's weights (its first fold's): the whole network where every
    tensor but the linear path (always this cohort's baseline fit) has the bundle's name and
    shape, else the image encoder alone. Returns what was loaded, for the log and metrics.json."""
    card, states = read(path)
    fold, saved = next(iter(states.items()))
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("linear.")}
    fits = lambda keys: keys and all(k in saved and saved[k].shape == own[k].shape for k in keys)  # noqa: E731
    if fits(list(own)):
        part, keys = "the whole network", list(own)
    elif fits(encoder := [k for k in own if k.startswith("branches.image.")]):
        part, keys = "the image encoder", encoder
    else:
        raise ValueError(f"training.init_from {path}: {card['model']}'s weights fit neither this model's network nor its image encoder "
                         f"(inputs {'+'.join(card['inputs'])} at {card['resolution']}, kind {card['kind']})")  # fmt: skip
    model.load_state_dict({k: saved[k] for k in keys}, strict=False)
    new = sorted({k.rsplit(".", 1)[0] for k in model.state_dict() if k not in keys})  # the linear path: this cohort's baseline
    log.info("started from %s's %s weights (%s of %s: %d tensors); new: %s", card["model"], fold, part, path, len(keys), ", ".join(new) or "nothing")
    return {"bundle": str(path), "model": card["model"], "fold": fold, "loaded": part, "tensors": len(keys), "new": new}
