"""Training: leakage-free fitting, determinism on CPU, and exact resume after a kill."""

import copy
import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from legibility import baseline, data, train
from legibility.grid import ModelSpec
from legibility.inputs import Phenotypes
from legibility.io import write_tsv
from legibility.shards import PackedArray

TRAINING = {"epochs": 4, "min_epochs": 2, "patience": 10, "batch_size": 4, "optimizer": "adamw", "lr": 0.003, "momentum": 0.9,
            "weight_decay": 0.01, "workers": 0}  # fmt: skip
MODEL = {"kind": "fusion", "channels": [4, 8], "sfcn_channels": [4, 8, 4], "connectivity_hidden": [16], "metadata_hidden": [8],
         "head_hidden": 8, "dropout": 0.1, "soft_labels": False, "bin_width": 2.0, "bin_sigma": 2.0}  # fmt: skip
SUBJECTS = [f"{i:02d}" for i in range(30)]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """30 subjects in 2 shards: 16³ images (3 modalities) and their 5 region means, 2 augmented
    copies, 6-edge connectivity; images carry age, connectivity carries sex."""
    root = tmp_path_factory.mktemp("cohort")
    draw = np.random.default_rng(0)
    age = draw.uniform(45, 80, len(SUBJECTS))
    sex = draw.integers(0, 2, len(SUBJECTS)).astype(float)
    index = {"p": [], "a": [], "c": [], "m": [], "r": []}  # each stage's index: its shards' tables, naming their arrays
    for shard, members in enumerate((SUBJECTS[::2], SUBJECTS[1::2])):
        rows = [SUBJECTS.index(s) for s in members]
        with PackedArray(root / f"p{shard}.npy", (len(members), 3, 16, 16, 16)) as images:
            images[...] = draw.normal(size=images.shape) + (age[rows] / 40)[:, None, None, None, None]
        with PackedArray(root / f"a{shard}.npy", (len(members), 2, 3, 16, 16, 16)) as copies:
            copies[...] = draw.normal(size=copies.shape)
        with PackedArray(root / f"c{shard}.npy", (len(members), 6), dtype=np.float32) as edges:
            edges[...] = draw.normal(size=edges.shape) + sex[rows, None]
        with PackedArray(root / f"m{shard}.npy", (len(members), 10), dtype=np.float32) as similarities:
            similarities[...] = draw.uniform(size=similarities.shape) + (age[rows] / 80)[:, None]
        table = pd.DataFrame({"subject": members, "row": range(len(members)), "status": "ok"})
        per_image = pd.concat([table.assign(modality=m) for m in ("t1", "flair", "dwi")])
        regions = per_image[["subject", "modality"]].reset_index(drop=True)
        ages = np.tile(age[rows], 3)
        for r in range(1, 6):
            regions[f"region_{r}"] = draw.normal(size=len(regions)) + ages / 4 * (r % 2)
        for name, frame in (("p", per_image), ("a", table), ("c", table), ("m", table)):
            index[name].append(frame.assign(array=str(root / f"{name}{shard}.npy")))
        index["r"].append(regions)
    sources = {}
    for name, source in (("p", "preprocess"), ("a", "augment"), ("c", "connectivity"), ("m", "mind"), ("r", "regions")):
        sources[source] = root / f"{name}.tsv"
        write_tsv(sources[source], pd.concat(index[name], ignore_index=True))
    values = pd.DataFrame({"age": age, "sex": sex, "bmi": draw.normal(27, 4, 30), "smoking": np.arange(30) % 3},
                          index=pd.Index(SUBJECTS, name="subject"))  # fmt: skip
    phenotypes = Phenotypes(values, {"sex": ["F", "M"], "smoking": ["never", "former", "current"]})
    split = pd.DataFrame({"subject": SUBJECTS, "split": ["train"] * 18 + ["val"] * 6 + ["test"] * 6})
    return {**sources, "copies": 2}, phenotypes, split


VARIABLES = {"age": {"type": "continuous", "block": "constitutional"}, "sex": {"type": "binary", "block": "constitutional"},
             "bmi": {"type": "continuous", "block": "serology"}, "smoking": {"type": "categorical", "block": "psychology"}}  # fmt: skip


def spec(target="age", inputs=("t1", "flair"), target_type="continuous", block="constitutional", **model):
    return ModelSpec(name=f"{target}__{'+'.join(inputs)}", target=target, target_type=target_type, target_block=block,
                     inputs=tuple(inputs), resolution=64 if {"t1", "flair", "dwi"} & set(inputs) else None,
                     kind=model.get("kind", "fusion"), training=dict(TRAINING), model={**MODEL, **model})  # fmt: skip


def with_linear_features(model_spec, cohort):
    """The datasets as a training job gives them to the network: with the baseline's features."""
    sources, phenotypes, split = cohort
    datasets, _ = data.build(model_spec, split, phenotypes, VARIABLES, sources)
    X = baseline.features(model_spec, datasets, sources["regions"])
    for name, dataset in datasets.items():
        dataset.vectors["linear"] = X[name].astype(np.float32)
    return datasets


def test_fitted_parameters_come_from_training_subjects_only(cohort):
    sources, phenotypes, split = cohort
    datasets, fitted = data.build(spec(inputs=("serology",)), split, phenotypes, VARIABLES, sources)
    train_ids = split.subject[split.split == "train"]
    assert fitted["target"]["mean"] == pytest.approx(phenotypes.values.loc[train_ids, "age"].mean())
    assert fitted["metadata"]["mean"][0] == pytest.approx(phenotypes.values.loc[train_ids, "bmi"].mean())
    # changing validation and test subjects' values changes nothing that was fitted
    tampered = copy.deepcopy(phenotypes)
    others = split.subject[split.split != "train"]
    tampered.values.loc[others, ["age", "bmi"]] = 1000.0
    assert data.build(spec(inputs=("serology",)), split, tampered, VARIABLES, sources)[1] == fitted
    _, fitted_sex = data.build(spec("sex", ("connectivity",), "binary"), split, phenotypes, VARIABLES, sources)
    counts = np.bincount(phenotypes.values.loc[train_ids, "sex"].astype(int), minlength=2)
    assert fitted_sex["class_weights"] == pytest.approx(list(counts.sum() / (2 * counts)), abs=1e-6)


def test_an_image_that_was_not_preprocessed_is_an_error(cohort, tmp_path):
    sources, phenotypes, split = cohort
    table = pd.read_csv(sources["preprocess"], sep="\t", dtype={"subject": str})
    table.loc[(table.subject == SUBJECTS[0]) & (table.modality == "flair"), "status"] = "excluded"
    write_tsv(tmp_path / "p.tsv", table)
    with pytest.raises(ValueError, match=f"no preprocessed image for sub-{SUBJECTS[0]} flair"):
        data.build(spec(), split, phenotypes, VARIABLES, {**sources, "preprocess": tmp_path / "p.tsv"})


def test_training_reads_augmented_copies_by_epoch(cohort):
    sources, phenotypes, split = cohort
    datasets, _ = data.build(spec(), split, phenotypes, VARIABLES, sources)
    train_set, val_set = datasets["train"], datasets["val"]
    root = sources["preprocess"].parent
    original = np.load(root / "p0.npy")[0, :2].astype(np.float32)
    subject = SUBJECTS[0]
    index = train_set.subjects.index(subject)
    for epoch, expected in ((0, original), (1, np.load(root / "a0.npy")[0, 0, :2]), (3, original)):
        train_set.epoch = epoch
        assert np.array_equal(train_set[index][0]["image"].numpy(), np.asarray(expected, np.float32))
    val_set.epoch = 1  # validation and test subjects are never augmented
    assert val_set.augmented is False


def test_same_seed_same_predictions(cohort, tmp_path):
    sources, phenotypes, split = cohort
    runs = []
    for name in ("a", "b"):
        train.run(spec(inputs=("t1", "connectivity", "serology")), split, phenotypes, VARIABLES, sources, seed=5, out_dir=tmp_path / name)
        runs.append(pd.read_csv(tmp_path / name / "predictions.tsv", sep="\t"))
    pd.testing.assert_frame_equal(runs[0], runs[1])
    weights = [torch.load(tmp_path / n / "model.pt", weights_only=True) for n in ("a", "b")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not (tmp_path / "a" / "checkpoint.pt").exists()  # removed once the model is complete


def test_resume_after_a_kill_equals_an_uninterrupted_run(cohort, tmp_path, monkeypatch):
    sources, phenotypes, split = cohort
    model_spec = spec(inputs=("t1", "connectivity"))
    datasets, fitted = data.build(model_spec, split, phenotypes, VARIABLES, sources)
    whole, _ = train.fit(model_spec, datasets, fitted, phenotypes.levels, 9, tmp_path / "whole.pt")

    class Killed(Exception):
        pass

    def kill_after_epoch_two(message, *args):
        if "epoch" in message and args[1] == 2:
            raise Killed  # as SIGKILL would: the checkpoint of epoch 2 is on disk, nothing more

    monkeypatch.setattr(train.log, "info", kill_after_epoch_two)
    with pytest.raises(Killed):
        train.fit(model_spec, datasets, fitted, phenotypes.levels, 9, tmp_path / "resumed.pt")
    monkeypatch.undo()
    assert torch.load(tmp_path / "resumed.pt", weights_only=True)["state"]["epoch"] == 2  # no pickled code
    resumed, state = train.fit(model_spec, datasets, fitted, phenotypes.levels, 9, tmp_path / "resumed.pt")
    assert state["epoch"] == TRAINING["epochs"]
    for key, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[key]), key


def test_a_checkpoint_of_other_settings_is_not_resumed(cohort, tmp_path, caplog):
    sources, phenotypes, split = cohort
    first = spec(inputs=("connectivity",))
    datasets, fitted = data.build(first, split, phenotypes, VARIABLES, sources)
    train.fit(first, datasets, fitted, phenotypes.levels, 1, tmp_path / "c.pt")
    changed = ModelSpec.from_dict({**first.as_dict(), "training": {**TRAINING, "lr": 0.01}})
    with caplog.at_level(logging.INFO, logger="legibility.train"):
        _, state = train.fit(changed, datasets, fitted, phenotypes.levels, 1, tmp_path / "c.pt")
    assert "ignoring a checkpoint of other settings" in caplog.text
    assert len(state["history"]) == TRAINING["epochs"] + 1  # and epoch 0, before training


def test_outputs_of_a_model_job(cohort, tmp_path):
    sources, phenotypes, split = cohort
    summary = train.run(spec("sex", ("connectivity",), "binary"), split, phenotypes, VARIABLES, sources, seed=2, out_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "model.pt", "predictions.tsv"]  # no checkpoint left
    assert summary["n_train"] == 18 and summary["n_test"] == 6 and summary["device"] == "cpu"
    assert set(summary["test"]) >= {"balanced_accuracy", "auc", "f1", "precision", "recall", "sensitivity", "specificity"}
    assert summary["baseline"]["method"] == "logistic" and set(summary["baseline"]["test"]) == set(summary["test"])
    assert summary["n_parameters"] > 0 and summary["wall_seconds"] > 0
    predictions = pd.read_csv(tmp_path / "predictions.tsv", sep="\t", dtype={"subject": str})
    assert set(predictions["split"]) == {"val", "test"} and set(predictions["true"]) <= {"F", "M"}
    assert set(predictions["baseline_prediction"]) <= {"F", "M"}
    # the weights load without unpickling code, into the model the job describes, and reproduce its test scores
    datasets = with_linear_features(spec("sex", ("connectivity",), "binary"), cohort)
    fitted = json.loads((tmp_path / "metrics.json").read_text())["fitted"]
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    model = train.build_model(spec("sex", ("connectivity",), "binary"), datasets, phenotypes.levels, fitted, (state["linear.weight"], state["linear.bias"]))
    model.load_state_dict(state)
    scores = 1 / (1 + np.exp(-train.predict(model, datasets["test"], torch.device("cpu"), 4)[:, 0]))
    assert np.allclose(scores, predictions.loc[predictions.split == "test", "score"], atol=1e-6)
    # every epoch's history, from epoch 0 (the linear start); the kept epoch is the best on validation
    history = summary["history"]
    assert [h["epoch"] for h in history] == list(range(summary["epochs"] + 1))
    best = max(history, key=lambda h: (h["val_metric"], -h["val_loss"]))
    assert summary["best_epoch"] == best["epoch"] and summary["degenerate"] in ("", summary["degenerate"])


def test_progress_goes_to_the_log(cohort, caplog, tmp_path):
    sources, phenotypes, split = cohort
    model_spec = spec("sex", ("connectivity",), "binary")
    datasets, fitted = data.build(model_spec, split, phenotypes, VARIABLES, sources)
    with caplog.at_level(logging.INFO, logger="legibility.train"):
        _, state = train.fit(model_spec, datasets, fitted, phenotypes.levels, 3, tmp_path / "c.pt")
    lines = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    assert len(lines) == TRAINING["epochs"] and "val_balanced_accuracy" in lines[0] and "train_loss" in lines[0]
    assert all(0 <= h["val_metric"] <= 1 for h in state["history"])


@pytest.mark.parametrize("inputs, target, target_type", [
    (("t1",), "age", "continuous"), (("t1", "flair", "dwi"), "sex", "binary"), (("connectivity",), "sex", "binary"),
    (("serology",), "smoking", "categorical"), (("t1", "connectivity", "serology"), "age", "continuous"),
    (("mind",), "age", "continuous"), (("connectivity", "mind", "serology"), "sex", "binary"),
])  # fmt: skip
def test_the_baseline_runs_for_every_input_kind(cohort, inputs, target, target_type):
    sources, phenotypes, split = cohort
    model_spec = spec(target, inputs, target_type)
    datasets, fitted = data.build(model_spec, split, phenotypes, VARIABLES, sources)
    X = baseline.features(model_spec, datasets, sources["regions"])
    per_image = 5 * len(model_spec.images)
    assert X["train"].shape == (18, per_image + 6 * model_spec.uses_connectivity + 10 * ("mind" in inputs) + len(model_spec.blocks))
    n_classes = len(phenotypes.levels.get(target, ()))
    described, outputs, _ = baseline.fit(model_spec, datasets, X, n_classes)
    assert outputs["test"].shape == (6, n_classes if n_classes > 2 else 1)
    for split in ("val", "test"):  # the recorded fit gives the same outputs, to the bit (a bundle predicts with it)
        assert np.array_equal(baseline.outputs_of(model_spec, described["estimator"], X[split], n_classes), outputs[split])
    scores = train.evaluate(model_spec, outputs, datasets, fitted, phenotypes)[1]["test"]
    if inputs == ("t1",):
        assert scores["r2"] > 0.5  # the region means carry age
    if inputs == ("connectivity",):
        assert scores["balanced_accuracy"] >= 5 / 6  # the edges carry sex


def test_the_baseline_is_fitted_on_the_training_split_only(cohort, tmp_path):
    sources, phenotypes, split = cohort
    model_spec = spec("age", ("t1", "serology"))
    datasets, _ = data.build(model_spec, split, phenotypes, VARIABLES, sources)
    first = baseline.fit(model_spec, datasets, baseline.features(model_spec, datasets, sources["regions"]), 0)
    # other subjects' region means and target values changed: scaling, penalty and fit unchanged
    table = pd.read_csv(sources["regions"], sep="\t", dtype={"subject": str})
    table.loc[~table.subject.isin(datasets["train"].subjects), "region_1"] = 1e6
    tampered = tmp_path / "regions.tsv"
    write_tsv(tampered, table)
    for split_name in ("val", "test"):
        datasets[split_name].targets = datasets[split_name].targets + 100
    second = baseline.fit(model_spec, datasets, baseline.features(model_spec, datasets, tampered), 0)
    assert first[0] == second[0] and np.array_equal(first[1]["train"], second[1]["train"])
    assert not np.array_equal(first[1]["test"], second[1]["test"])


def test_soft_label_sfcn_predicts_in_the_targets_units(cohort, tmp_path):
    sources, phenotypes, split = cohort
    model_spec = spec("age", ("t1",), kind="sfcn", soft_labels=True)
    datasets, fitted = data.build(model_spec, split, phenotypes, VARIABLES, sources)
    train_ages = phenotypes.values.loc[datasets["train"].subjects, "age"]
    centres = np.array(fitted["bins"]["centres"])
    assert np.allclose(np.diff(centres), 2.0) and centres[0] < train_ages.min() - 2 and centres[-1] > train_ages.max() + 2
    summary = train.run(model_spec, split, phenotypes, VARIABLES, sources, seed=1, out_dir=tmp_path)
    weights = torch.load(tmp_path / "model.pt", weights_only=True)
    assert weights["head.3.weight"].shape[0] == len(centres)  # one output per bin
    predictions = pd.read_csv(tmp_path / "predictions.tsv", sep="\t")
    assert predictions["prediction"].between(centres[0], centres[-1]).all()  # expected bin centre, in years
    assert np.isfinite(summary["test"]["mae"])


def test_vector_inputs_are_scaled_on_the_training_split_and_feed_their_own_branches(cohort):
    sources, phenotypes, split = cohort
    model_spec = spec("age", ("connectivity", "mind", "serology"))
    datasets, fitted = data.build(model_spec, split, phenotypes, VARIABLES, sources)
    assert list(datasets["train"].vectors) == ["connectivity", "mind", "metadata"]
    train_mind = datasets["train"].vectors["mind"]
    assert np.allclose(train_mind.mean(0), 0, atol=1e-6) and not np.allclose(datasets["test"].vectors["mind"].mean(0), 0, atol=1e-3)
    model = train.build_model(model_spec, datasets, phenotypes.levels, fitted)
    assert list(model.branches) == ["connectivity", "mind", "metadata"] and model.branches["mind"][0].in_features == 10


@pytest.mark.parametrize("inputs, target, target_type, model", [
    (("connectivity",), "sex", "binary", {}), (("serology",), "smoking", "categorical", {}),
    (("t1", "serology"), "age", "continuous", {}), (("t1",), "age", "continuous", {"kind": "sfcn", "soft_labels": True}),
])  # fmt: skip
def test_the_network_starts_from_its_linear_baseline(cohort, inputs, target, target_type, model):
    """Before training (epoch 0), a network predicts what the cell's linear baseline predicts: a
    network that cannot learn falls back on a linear model, never on a constant. On training
    subjects it adds to cross-fitted predictions, which leave it something to learn."""
    sources, phenotypes, split = cohort
    model_spec = spec(target, inputs, target_type, **model)
    datasets = with_linear_features(model_spec, cohort)
    _, fitted = data.build(model_spec, split, phenotypes, VARIABLES, sources)
    X = {s: d.vectors["linear"] for s, d in datasets.items()}
    _, outputs, coefficients = baseline.fit(model_spec, datasets, X, len(phenotypes.levels.get(target, ())))
    start, spread = train.offsets(outputs, datasets, fitted)
    network = train.build_model(model_spec, datasets, phenotypes.levels, fitted, train.linear_layer(coefficients, fitted, spread))
    given_features = train.predict(network, datasets["test"], torch.device("cpu"), 4)  # the frozen layer: the full fit
    datasets["test"].vectors["offset"] = start["test"]
    given_offsets = train.predict(network, datasets["test"], torch.device("cpu"), 4)  # as in training jobs
    ours, layer = (train.outputs_to_predictions(model_spec, o, fitted, phenotypes.levels) for o in (given_offsets, given_features))
    assert np.allclose(ours[1], layer[1], atol=1e-4)  # the same predictions (logits may differ by a constant)
    linear = train.outputs_to_predictions(model_spec, outputs["test"].astype(np.float32), fitted, phenotypes.levels)
    if model.get("soft_labels"):  # the mean, over the bins, of a Gaussian around the linear prediction
        loss, (mean, std) = train.soft_label_loss(fitted), fitted["target"].values()
        centres, centre = loss.centres.numpy(), (linear[0] - mean) / std
        density = np.exp(-((centres[None, :] - centre[:, None]) ** 2) / (2 * spread**2))
        assert np.allclose(ours[0], (density @ centres / density.sum(axis=1)) * std + mean, atol=1e-3)
        assert spread == pytest.approx(max(np.sqrt(np.mean((datasets["train"].targets - outputs["cross_fitted"][:, 0]) ** 2)), loss.sigma))
    elif target_type == "continuous":
        assert np.allclose(ours[0], linear[0], atol=1e-4)
    else:
        assert np.allclose(ours[2], linear[2], atol=1e-4)  # the same class probabilities
    assert not any(p.requires_grad for p in network.linear.parameters())  # frozen: the network learns the rest
    assert not np.allclose(outputs["cross_fitted"], outputs["train"])  # each training subject from a fit without it


def test_constant_predictions_are_degenerate():
    frame = pd.DataFrame({"split": ["val"] * 3 + ["test"] * 3, "prediction": ["M", "M", "M", "M", "F", "M"]})
    assert train.degenerate(spec("sex", target_type="binary"), frame, {}) == "predicts 'M' for every val subject"
    values = pd.DataFrame({"split": ["val"] * 2 + ["test"] * 2, "prediction": [1.0, 2.0, 61.5, 61.5]})
    assert "every test subject" in train.degenerate(spec(), values, {"target": {"std": 8.0}})
    assert train.degenerate(spec(), values.assign(prediction=[1.0, 2.0, 3.0, 4.0]), {"target": {"std": 8.0}}) == ""


def test_an_empty_validation_split_or_a_class_missing_from_training_stops_with_a_message(cohort):
    sources, phenotypes, split = cohort
    no_val = split.assign(split=split.split.replace({"val": "train"}))
    with pytest.raises(ValueError, match="age__t1, fold-3: target 'age' has no val subjects"):
        data.build(spec(), no_val, phenotypes, VARIABLES, sources, where="age__t1, fold-3")
    never = split.subject[(split.split == "train") & (phenotypes.values.loc[split.subject, "smoking"] == 0).to_numpy()]
    only_tested = split.assign(split=np.where(split.subject.isin(never), "test", split.split))
    with pytest.raises(ValueError, match="has no training subject of class 'never'"):
        data.build(spec("smoking", ("serology",), "categorical", "psychology"), only_tested, phenotypes, VARIABLES, sources)


def test_soft_labels_of_values_beyond_the_bins_count_in_the_edge_bins():
    from legibility.models import SoftLabelLoss

    loss = SoftLabelLoss(np.arange(-2.0, 2.01, 0.5), sigma=0.3)
    labels = loss.soft_labels(torch.tensor([-9.0, 9.0, 0.0]))
    assert torch.allclose(labels.sum(dim=1), torch.ones(3))  # never an all-zero label
    assert labels[0].argmax() == 0 and labels[1].argmax() == len(loss.centres) - 1
    assert torch.isfinite(loss(torch.zeros(3, len(loss.centres)), torch.tensor([-9.0, 9.0, 0.0])))


def test_sgd_follows_pengs_recipe(cohort, tmp_path):
    model_spec = spec("age", ("serology",))
    settings = {**TRAINING, "optimizer": "sgd", "lr": 0.01, "weight_decay": 0.001}
    optimiser = train.make_optimiser(torch.nn.Linear(3, 1), settings)
    assert isinstance(optimiser, torch.optim.SGD) and optimiser.defaults["momentum"] == 0.9 and optimiser.defaults["weight_decay"] == 0.001
    assert isinstance(train.make_optimiser(torch.nn.Linear(3, 1), TRAINING), torch.optim.AdamW) and model_spec.training["optimizer"] == "adamw"


def test_a_declared_proxy_is_never_read(cohort, tmp_path):
    """`obese` is bmi > 27, bmi is in another block (serology): declared in `exclude`, bmi leaves
    the model's inputs (it reads crp only, and learns nothing), and metrics.json says so."""
    sources, phenotypes, split = cohort
    values = phenotypes.values.assign(obese=(phenotypes.values["bmi"] > 27).astype(float),
                                      crp=np.random.default_rng(5).normal(size=len(phenotypes.values)))  # fmt: skip
    cohort_with_proxy = Phenotypes(values, {**phenotypes.levels, "obese": ["no", "yes"]})
    declared = {**VARIABLES, "crp": {"type": "continuous", "block": "serology"},
                "obese": {"type": "binary", "block": "disease", "levels": ["no", "yes"]}}  # fmt: skip
    model = spec("obese", ("serology",), "binary", block="disease")
    read = {}
    for excluded in ([], ["bmi"]):
        variables = {**declared, "obese": {**declared["obese"], "exclude": excluded}}
        summary = train.run(model, split, cohort_with_proxy, variables, sources, seed=2, out_dir=tmp_path / str(excluded))
        read[tuple(excluded)] = summary
    assert read[()]["variables_read"] == ["bmi", "crp"] and read[("bmi",)]["variables_read"] == ["crp"]
    assert json.loads((tmp_path / "['bmi']" / "metrics.json").read_text())["variables_read"] == ["crp"]  # as the job writes it
    assert read[("bmi",)]["fitted"]["metadata"]["columns"] == ["crp"]
    assert read[()]["baseline"]["test"]["balanced_accuracy"] >= 0.8  # the proxy, read, gives the target away
    assert read[("bmi",)]["baseline"]["test"]["balanced_accuracy"] < 0.8


def test_a_block_left_empty_by_exclusions_is_a_config_error(demo_config):
    from legibility.grid import ConfigError, expand_grid

    demo_config["phenotypes"]["variables"]["hypertension"]["exclude"] = ["nonexistent"]
    with pytest.raises(ConfigError, match="hypertension.exclude: nonexistent not among"):
        expand_grid(demo_config)
    serology = [n for n, v in demo_config["phenotypes"]["variables"].items() if v["block"] == "serology"]
    demo_config["phenotypes"]["variables"]["hypertension"]["exclude"] = serology
    demo_config["grid"] = [{"targets": ["hypertension"], "input_sets": [["constitutional", "serology"]]}]
    with pytest.raises(ConfigError, match="hypertension__constitutional\\+serology: every variable of block\\(s\\) serology is excluded"):
        expand_grid(demo_config)


def test_cpu_training_switches_deterministic_algorithms_on_without_loading_torchs_compiler():
    """train.run's switch is torch.use_deterministic_algorithms' own, less the compiler's flag."""
    import subprocess
    import sys

    check = ("import sys, torch; from legibility import train; train.deterministic(True); "
             "assert torch.are_deterministic_algorithms_enabled(); assert 'torch._inductor' not in sys.modules")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True).stderr == ""
