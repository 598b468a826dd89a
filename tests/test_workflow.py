"""The real Snakemake workflow, end to end, on the default demo (about six minutes on 2 cores).

This is exactly what the README's run command does after installing: the claims about the demo
(QC catches every defect, sex and age are predicted, the negative control is not) are checked
on the demo itself.
"""

import json
import shutil

import pandas as pd
import pytest
import yaml

from conftest import ROOT, planned_jobs, run_snakemake
from legibility.io import read_tsv

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    shutil.copytree(ROOT / "config", workdir / "config")
    run_snakemake(workdir)
    return workdir


def test_contract_files(run):
    for name in ("qc.tsv", "splits.tsv", "performance.tsv", "legibility.tsv", "performance_grid.png", "mind/group_mean.png"):
        assert (run / "results" / name).stat().st_size > 0, name
    performance = read_tsv(run / "results" / "performance.tsv")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert len(performance) == sum(len(e["targets"]) * len(e["input_sets"]) for e in config["grid"])
    for model in performance["model"]:
        metrics = json.loads((run / "results" / "models" / model / "metrics.json").read_text())
        assert metrics["model"] == model and metrics["n_test"] > 0


def test_nothing_to_do_after_a_complete_run(run):
    assert "Nothing to be done" in run_snakemake(run, "-n").stdout


def test_qc_flags_exactly_the_defects_in_the_truth_file(run):
    truth = json.loads((run / "results" / "demo" / "truth.json").read_text())
    qc = read_tsv(run / "results" / "qc.tsv")
    failed = set(zip(qc.loc[qc.status == "fail", "subject"], qc.loc[qc.status == "fail", "modality"]))
    expected = {(d["subject"], d["modality"]) for d in truth["unstripped"] + truth["missing"] + truth["high_motion"]}
    assert failed == expected
    assert len(qc) == len(truth["subjects"]) * 4


def test_every_model_of_a_target_is_tested_on_the_same_subjects(run):
    splits = read_tsv(run / "results" / "splits.tsv")
    for target in ("sex", "age", "negative_control"):
        expected = set(splits[(splits.target == target) & (splits.split == "test")].subject)
        for model in (run / "results" / "models").glob(f"{target}__*"):
            predictions = read_tsv(model / "predictions.tsv")
            assert set(predictions[predictions.split == "test"].subject) == expected
    excluded = splits[splits.split == "excluded"]
    assert (excluded.reason.str.len() > 0).all()  # listed with a reason, never silently dropped


def test_augmentation_cache_holds_training_subjects_only(run):
    assigned = read_tsv(run / "results" / "splits" / "subjects.tsv").set_index("subject")["split"]
    cached = pd.concat([read_tsv(p) for p in (run / "results" / "augment").glob("*.tsv")])
    assert len(cached) > 0 and (assigned[cached.subject] == "train").all()


def test_sex_and_age_are_predicted_and_the_negative_control_is_not(run):
    performance = read_tsv(run / "results" / "performance.tsv")
    best = performance.groupby("target")["score"].max()
    assert best["sex"] >= 0.8  # balanced accuracy
    assert best["age"] >= 0.5  # R²
    assert best["negative_control"] < 0.15  # R²: no better than predicting the mean
    verdicts = read_tsv(run / "results" / "legibility.tsv").set_index("target")["verdict"]
    assert verdicts["sex"] == verdicts["age"] == "legible"
    assert verdicts["negative_control"] == "not legible"
    assert (performance.loc[performance.target == "negative_control", "legible"] == "no").all()
    for target in verdicts.index:
        assert (run / "results" / "targets" / f"{target}.png").stat().st_size > 0


def planned(run, change):
    """What a dry run would redo after `change(config)`: {rule: set of jobs' wildcard values}."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    change(config)
    (run / "changed.yaml").write_text(yaml.safe_dump(config))
    return planned_jobs(run, run / "changed.yaml")


def image_models(run):
    return {f"model={m.name}" for m in (run / "results" / "models").iterdir() if "__t1" in m.name}


def test_changed_augmentation_reruns_the_cache_and_image_models_only(run):
    jobs = planned(run, lambda c: c["augment"].update(rotate_deg=7))
    assert set(jobs) == {"augment_shard", "augment_index", "train", "performance", "effective_config", "all"}
    assert jobs["train"] == image_models(run)


def test_one_targets_learning_rate_reruns_its_models_only(run):
    def change(config):
        config["grid"].append({"targets": ["smoking"], "input_sets": [["constitutional", "disease"]], "training": {"lr": 0.001}})
        config["grid"] = [e for e in config["grid"] if e["targets"] != ["smoking"] or "training" in e]

    jobs = planned(run, change)
    assert set(jobs) == {"train", "performance", "effective_config", "all"}
    assert jobs["train"] == {"model=smoking__constitutional+disease"}


def test_changed_atlas_reruns_connectivity_and_its_models_only(run):
    jobs = planned(run, lambda c: c["atlas"].update(n_regions=32))
    assert set(jobs) == {"atlas", "connectivity_shard", "connectivity_index", "connectivity_group", "train", "performance", "effective_config", "all"}
    assert jobs["train"] == {f"model={m.name}" for m in (run / "results" / "models").iterdir() if "connectivity" in m.name}


def test_changed_statistics_rerun_the_tables_only(run):
    jobs = planned(run, lambda c: c.update(statistics={"permutations": 999}))
    assert set(jobs) == {"performance", "effective_config", "all"}


def test_a_new_target_trains_only_its_models(run):
    jobs = planned(run, lambda c: c["grid"].append({"targets": ["bmi"], "input_sets": [["t1"], ["serology"]]}))
    assert set(jobs) == {"target_split", "splits_table", "train", "performance", "effective_config", "all"}
    assert jobs["train"] == {"model=bmi__t1__64", "model=bmi__serology"}
    assert "augment_shard" not in jobs  # the cache is untouched


def test_report(run):
    run_snakemake(run, "--report", str(run / "report.html"))
    assert (run / "report.html").stat().st_size > 10_000


def test_lint_is_clean():
    result = run_snakemake(ROOT, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr
