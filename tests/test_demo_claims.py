"""The README's claims about the demo, checked on a finished `make demo` (`make demo-check`
runs the demo, then these tests on it; CI runs it after the suite). What the demo finds needs its
96 subjects: the suite runs the same workflow on a smaller demo (tests/test_workflow.py), where
these verdicts cannot be expected. Without --demo-results, as in `make test`, they are skipped.
"""

import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_snakemake, validated
from legibility.io import read_tsv

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def run(request):
    """The folder of a finished run of the demo's own configuration (config/config.yaml)."""
    folder = request.config.getoption("--demo-results")
    if not folder:
        pytest.skip("the full demo's claims: `make demo-check` runs the demo and checks them (CI does, after the suite)")
    folder = Path(folder).resolve()
    effective = folder / "results" / "config.yaml"
    assert (folder / "results" / "legibility.tsv").exists() and effective.exists(), f"{folder} holds no finished demo run"
    demo = validated(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    assert yaml.safe_load(effective.read_text()) == demo, f"{folder} ran another configuration than config/config.yaml"
    return folder


def test_the_demos_verdicts_follow_its_truth(run):
    """What the demo's generator put in (results/demo/truth.json) is what the grid finds: sex and
    age from the images that carry them, hypertension (which follows age and BMI) from the
    constitutional block, and the negative control, pure noise, from nothing."""
    truth = json.loads((run / "results" / "demo" / "truth.json").read_text())["effects"]
    assert "temporal lobes" in truth["sex"] and "ventricles" in truth["age"] and "hypertension ~ age + bmi" in truth["phenotypes"]
    performance = read_tsv(run / "results" / "performance.tsv").set_index(["target", "cell"])
    verdicts = read_tsv(run / "results" / "legibility.tsv").set_index("target")
    for target, cells in {"sex": ["t1", "t1+flair+dwi", "connectivity"], "age": ["t1+flair+dwi", "connectivity"],
                          "hypertension": ["constitutional+serology"]}.items():  # fmt: skip
        assert verdicts.loc[target, "verdict"] == "legible", target
        assert all(performance.loc[(target, c), "legible"] == "yes" for c in cells), (target, performance.loc[target, "legible"])
    assert verdicts.loc["negative_control", "verdict"] == "not legible"
    assert (performance.loc["negative_control", ["model_legible", "baseline_legible"]] == "no").all(axis=None)
    for target in verdicts.index:
        assert (run / "results" / "targets" / f"{target}.png").stat().st_size > 0


def test_what_imaging_adds_follows_the_truth(run):
    """Age from the images goes beyond sex, its confounds; the negative control's images add
    nothing to its metadata."""
    performance = read_tsv(run / "results" / "performance.tsv").set_index("model")
    assert performance.loc["age__t1+flair+dwi__64", "beats_confounds"] == "yes"  # R² 0.96 beyond sex's about 0
    assert performance.loc["negative_control__t1+flair+dwi+serology+disease__64", "adds_to_metadata"] == "no"  # pure noise
    verdicts = read_tsv(run / "results" / "legibility.tsv").set_index("target")
    assert verdicts.loc["negative_control", "imaging_adds"] == "no"
    assert "t1+flair+dwi" in verdicts.loc["age", "beyond_confounds_from"].split(";")


def test_hypertensions_strongest_mutual_information_is_with_age(run):
    """The demo's hypertension follows age and BMI: of its pairs, age is the strongest."""
    mi = read_tsv(run / "results" / "analysis" / "mutual_information.tsv").set_index("target")
    assert mi.loc["hypertension"].drop("hypertension").idxmax() == "age"


def test_predict_mode_on_a_second_cohort_scores_within_the_original_interval(run, tmp_path):
    """A bundle applied to a cohort it never saw: the demo's generator with another seed (its
    BOLD only, as a cohort without structural scans), run through a user's config with no grid.
    The age model from connectivity scores an R² within the interval of its own test set."""
    original = read_tsv(run / "results" / "performance.tsv").set_index("model").loc["age__connectivity"]
    run_snakemake(run, "results/bundles/age__connectivity.tar")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["seed"] += 1
    config["demo"].update(n_subjects=30, unstripped=0)
    config["inputs"]["templates"] = {k: v for k, v in config["inputs"]["templates"].items() if k in ("bold", "confounds")}
    config["predict"] = {"bundles": [str(run / "results" / "bundles" / "age__connectivity.tar")]}
    del config["grid"]
    (tmp_path / "second.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(tmp_path, configfile=tmp_path / "second.yaml")
    summary = json.loads((tmp_path / "results" / "predictions" / "age__connectivity.json").read_text())
    assert summary["n_scored"] == 29  # the one who moves too much fails QC
    assert original.ci_low <= summary["test"]["r2"] <= original.ci_high, (summary["test"]["r2"], original.ci_low, original.ci_high)
