"""Model bundles: one archive of a model's weights and card, read back safely, and fine-tuning
from it (training.init_from)."""

import copy
import io
import json
import tarfile

import pytest
import torch

from legibility import bundle, train
from test_train import VARIABLES, cohort, spec  # noqa: F401  (cohort: a fixture)


def performance_row():
    return {"metric": "r2", "score": 0.5, "ci_low": 0.2, "ci_high": 0.7, "n_test": 6, "baseline_score": 0.4, "chance": 0.0}


@pytest.fixture(scope="module")
def exported(cohort, tmp_path_factory):  # noqa: F811
    """An age model from T1 and FLAIR, trained and exported."""
    from conftest import ROOT, validated
    import yaml

    sources, phenotypes, split = cohort
    folder = tmp_path_factory.mktemp("age")
    train.run(spec(), split, phenotypes, VARIABLES, sources, seed=3, out_dir=folder)
    summary = json.loads((folder / "metrics.json").read_text())
    config = validated(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    weights = {"holdout": (folder / "model.pt").read_bytes()}
    card = bundle.card({"holdout": summary}, weights, config, performance_row(), {"baseline": b"atlas"})
    path = folder / "age.tar"
    bundle.write(path, card, weights)
    return path, summary, config


def test_a_bundle_holds_the_weights_and_what_shaped_its_inputs(exported):
    path, summary, config = exported
    card, states = bundle.read(path)
    assert card["model"] == summary["model"] and card["inputs"] == ["t1", "flair"] and card["resolution"] == 64
    assert card["preprocessing"]["preprocess"] == config["preprocess"] and card["preprocessing"]["space"] == config["inputs"]["space"]
    assert card["atlases"]["baseline"]["sha256"] == bundle.sha256(b"atlas") and card["folds"]["holdout"]["fitted"] == summary["fitted"]
    assert card["folds"]["holdout"]["test"] == summary["test"] and card["software"]["packages"]["torch"] == torch.__version__
    saved = torch.load(path.parent / "model.pt", weights_only=True)
    assert states["holdout"].keys() == saved.keys() and all(torch.equal(states["holdout"][k], saved[k]) for k in saved)
    with tarfile.open(path) as archive:
        assert "age" in archive.extractfile("card.md").read().decode()
        assert {m.mtime for m in archive.getmembers()} == {0}  # the same model, the same bytes


def test_a_model_scored_on_too_few_subjects_for_an_interval_is_still_exported(exported):
    card, _ = bundle.read(exported[0])
    card["performance"].update(ci_low=None, ci_high=None)  # how a card stores performance.tsv's n/a
    assert "[n/a, n/a]" in bundle.markdown(card)


def test_a_bundle_of_another_format_or_with_other_weights_is_refused(exported, tmp_path):
    path, _, _ = exported
    with tarfile.open(path) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
    card = json.loads(members["card.json"])
    for name, change in (("format", lambda c, w: c.update(format=99)), ("SHA-256", lambda c, w: w.update(holdout=w["holdout"] + b"0"))):
        changed, weights = copy.deepcopy(card), {"holdout": members["holdout/model.pt"]}
        change(changed, weights)
        out = tmp_path / f"{name}.tar"
        with tarfile.open(out, "w") as archive:
            for member, data in (("card.json", json.dumps(changed).encode()), ("holdout/model.pt", weights["holdout"])):
                info = tarfile.TarInfo(member)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        with pytest.raises(ValueError, match=name):
            bundle.read(out)


def started(monkeypatch):
    """The network's state right after bundle.initialise, in a training job."""
    captured, real = {}, bundle.initialise

    def spy(model, path, log):
        loaded = real(model, path, log)
        captured.update(copy.deepcopy(model.state_dict()))
        return loaded

    monkeypatch.setattr(bundle, "initialise", spy)
    return captured


def fine_tuned(target, inputs, path):
    model = spec(target, inputs)
    model.training["init_from"] = str(path)
    return model


def test_fine_tuning_starts_from_the_bundles_network_and_trains(exported, cohort, tmp_path, monkeypatch):  # noqa: F811
    path, _, _ = exported
    sources, phenotypes, split = cohort
    initial = started(monkeypatch)
    summary = train.run(fine_tuned("age", ("t1", "flair"), path), split, phenotypes, VARIABLES, sources, seed=4, out_dir=tmp_path)
    saved = bundle.read(path)[1]["holdout"]
    assert summary["started_from"]["loaded"] == "the whole network" and summary["started_from"]["new"] == ["linear"]
    assert all(torch.equal(initial[k], saved[k]) for k in saved if not k.startswith("linear."))
    assert summary["epochs"] >= 1
    final = torch.load(tmp_path / "model.pt", weights_only=True)
    assert summary["best_epoch"] == 0 or any(not torch.equal(final[k], saved[k]) for k in saved if not k.startswith("linear."))


def test_other_inputs_start_from_the_image_encoder_only_and_a_misfit_is_refused(exported, cohort, tmp_path, monkeypatch):  # noqa: F811
    path, _, _ = exported
    sources, phenotypes, split = cohort
    initial = started(monkeypatch)
    summary = train.run(fine_tuned("bmi", ("t1", "flair", "connectivity"), path), split, phenotypes, VARIABLES, sources, seed=4, out_dir=tmp_path)
    saved = bundle.read(path)[1]["holdout"]
    assert summary["started_from"]["loaded"] == "the image encoder"
    assert {"branches.connectivity.0", "head.0", "head.3"} <= set(summary["started_from"]["new"])
    assert all(torch.equal(initial[k], saved[k]) for k in saved if k.startswith("branches.image."))
    with pytest.raises(ValueError, match="init_from"):  # one channel, not two: its encoder does not fit either
        train.run(fine_tuned("age", ("t1",), path), split, phenotypes, VARIABLES, sources, seed=4, out_dir=tmp_path / "t1")


def test_every_scaling_a_model_fitted_is_in_its_metrics_at_full_precision(cohort, tmp_path):  # noqa: F811
    """What predicting new subjects needs: the training split's scaling of each input and the
    baseline's full fit rebuild a test subject's inputs and the linear start exactly."""
    import numpy as np

    from legibility import baseline, data
    from legibility.io import read_tsv
    from legibility.shards import open_packed

    sources, phenotypes, split = cohort
    model = spec("age", ("t1", "connectivity", "serology"))
    train.run(model, split, phenotypes, VARIABLES, sources, seed=5, out_dir=tmp_path)
    fitted = json.loads((tmp_path / "metrics.json").read_text())["fitted"]
    datasets, _ = data.build(model, split, phenotypes, VARIABLES, sources)
    test = datasets["test"].subjects
    rescale = lambda raw, s: np.nan_to_num((raw - np.array(s["mean"])) / np.array(s["std"])).astype(np.float32)  # noqa: E731
    index = read_tsv(sources["connectivity"]).set_index("subject")
    raw = np.stack([open_packed(index.loc[s, "array"])[index.loc[s, "row"]] for s in test]).astype(np.float64)
    assert np.array_equal(rescale(raw, fitted["connectivity"]), datasets["test"].vectors["connectivity"])
    metadata = phenotypes.values.loc[test, ["bmi"]].to_numpy(float)
    assert fitted["metadata"]["columns"] == ["bmi"] and np.array_equal(rescale(metadata, fitted["metadata"]), datasets["test"].vectors["metadata"])
    X = baseline.features(model, datasets, sources["regions"])
    regions = read_tsv(sources["regions"]).set_index(["subject", "modality"]).loc[[(s, "t1") for s in test]].to_numpy(float)
    assert np.array_equal(rescale(regions, fitted["regions"]), X["test"][:, : regions.shape[1]].astype(np.float32))
    _, outputs, _ = baseline.fit(model, datasets, X, 0)
    assert np.array_equal(baseline.outputs_of(model, fitted["baseline"], X["test"], 0), outputs["test"])


@pytest.mark.parametrize("inputs, target, target_type, model", [
    (("t1", "flair"), "age", "continuous", {}), (("t1",), "age", "continuous", {"kind": "sfcn", "soft_labels": True}),
    (("connectivity", "serology"), "sex", "binary", {}), (("mind", "serology"), "smoking", "categorical", {}),
])  # fmt: skip
def test_a_bundle_predicts_its_test_subjects_as_its_training_job_did(cohort, tmp_path, inputs, target, target_type, model):  # noqa: F811
    """Inputs rebuilt from the card's scalings, the bundle's baseline and network: the same
    predictions, to the bit, as the training job's on its test subjects, predicted here among
    the whole cohort (as a new cohort holds other subjects than a test split)."""
    import numpy as np
    import pandas as pd

    from legibility import predict
    from test_train import SUBJECTS

    sources, phenotypes, split = cohort
    model_spec = spec(target, inputs, target_type, **model)
    summary = train.run(model_spec, split, phenotypes, VARIABLES, sources, seed=6, out_dir=tmp_path)
    weights = {"holdout": (tmp_path / "model.pt").read_bytes()}
    declared = {n: {**v, **({"levels": phenotypes.levels[n]} if n in phenotypes.levels else {})} for n, v in VARIABLES.items()}
    config = {"phenotypes": {"variables": declared}, "inputs": {"space": "mni"}, "seed": 1, "split": {},
              **{k: {"kind": "correlation"} if k == "connectivity" else {} for k in ("skullstrip", "registration", "qc", "preprocess", "augment", "mind", "connectivity", "atlas")},
              "baseline": {"atlas": {}}, "mind": {"atlas": {}}}  # fmt: skip
    bundle.write(tmp_path / "b.tar", bundle.card({"holdout": summary}, weights, config, performance_row(), {}), weights)
    expected = pd.read_csv(tmp_path / "predictions.tsv", sep="\t", dtype={"subject": str}).query("split == 'test'")
    declared = {n: declared[n] for n in summary["variables_read"]}
    from legibility.io import write_tsv

    write_tsv(tmp_path / "got.tsv", predict.run(tmp_path / "b.tar", "holdout", SUBJECTS, sources, phenotypes, declared))
    got = pd.read_csv(tmp_path / "got.tsv", sep="\t", dtype={"subject": str}).set_index("subject")  # as the training job's file: written, then read
    for column in [c for c in expected.columns if c in got.columns]:
        assert np.array_equal(got.loc[expected.subject, column].to_numpy(), expected[column].to_numpy()), column
    assert {"prediction", "score", "baseline_prediction"} <= set(got.columns) and len(expected) == 6 and list(got.index) == SUBJECTS
