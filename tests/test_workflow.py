"""The real Snakemake workflow, end to end, on the demo scaled down (`suite_demo`): every stage,
input type, input set, target and comparator of `make demo` (18 of its 22 models), on fewer
subjects with narrow networks trained for a few epochs, so that the suite stays quick. It checks what every run must show (files, QC,
registration, splits, reruns, bundles, predict mode, report, dashboard). What the full demo
finds, the README's claims, needs its 96 subjects: tests/test_demo_claims.py checks it on a
finished `make demo` (`make demo-check`, which CI runs after the suite).
"""

import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, planned_jobs, run_snakemake, validated
from legibility import demo, regions, resample, template
from legibility.grid import expand_grid
from legibility.io import read_tsv

pytestmark = pytest.mark.workflow


def suite_demo() -> dict:
    """The demo's configuration (config/config.yaml) on 32 subjects, two with scalp, at 64³ only,
    one augmented copy, narrower networks trained for 3 epochs (the SFCN for 2), 20 shuffles per
    pair of targets for the mutual information's chance level, and 18 of its grid's 22 models:
    the same stages, shards, input sets (MIND for age only, serology and disease alone for sex and
    as the negative control's comparator), targets and comparators."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["demo"].update(n_subjects=32, unstripped=2)
    config["preprocess"] = {"resolutions": [64]}
    config["augment"]["copies"] = 1
    config["training"]["epochs"] = 3
    config["model"]["channels"] = [4, 4, 8, 16, 16]
    sex_and_age, control = config["grid"][:2]
    assert sex_and_age["targets"] == ["sex", "age"] and control["targets"] == ["negative_control"]
    sex_and_age["input_sets"] = [s for s in sex_and_age["input_sets"] if s not in (["mind"], ["serology", "disease"])]
    control["input_sets"] = [s for s in control["input_sets"] if s not in (["connectivity"], ["mind"])]
    config["grid"] += [{"targets": ["sex"], "input_sets": [["serology", "disease"]]}, {"targets": ["age"], "input_sets": [["mind"]]}]
    sfcn = next(e for e in config["grid"] if e.get("model", {}).get("kind") == "sfcn")
    sfcn["model"]["sfcn_channels"] = [4, 4, 8, 8, 8, 8]
    sfcn["training"]["epochs"] = 2
    config.setdefault("analysis", {})["mi_permutations"] = 20
    return config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    shutil.copytree(ROOT / "config", workdir / "config")
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(suite_demo()))
    run_snakemake(workdir)
    return workdir


def config_of(run) -> dict:
    return yaml.safe_load((run / "config" / "config.yaml").read_text())


def test_contract_files(run):
    for name in ("qc.tsv", "splits.tsv", "performance.tsv", "legibility.tsv", "performance_grid.png", "mind/group_mean.png"):
        assert (run / "results" / name).stat().st_size > 0, name
    performance = read_tsv(run / "results" / "performance.tsv")
    config = validated(config_of(run))
    assert sorted(performance["model"]) == sorted(expand_grid(config))  # the grid's cells and their comparators
    for model in performance["model"]:
        metrics = json.loads((run / "results" / "models" / model / "holdout" / "metrics.json").read_text())
        assert metrics["model"] == model and metrics["n_test"] > 0
        assert [h["epoch"] for h in metrics["history"]] == list(range(metrics["epochs"] + 1))  # every epoch, from the linear start
        assert (run / "results" / "test_predictions" / f"{model}.png").stat().st_size > 0
        assert (run / "results" / "training_curves" / f"{model}.png").stat().st_size > 0


def test_nothing_to_do_after_a_complete_run(run):
    assert "Nothing to be done" in run_snakemake(run, "-n").stdout


def test_qc_flags_exactly_the_defects_in_the_truth_file(run):
    """The demo strips with deepbet: its images that keep their scalp pass once stripped, so
    QC fails only the missing image and the moving BOLD series."""
    truth = json.loads((run / "results" / "demo" / "truth.json").read_text())
    qc = read_tsv(run / "results" / "qc.tsv")
    failed = set(zip(qc.loc[qc.status == "fail", "subject"], qc.loc[qc.status == "fail", "modality"]))
    assert failed == {(d["subject"], d["modality"]) for d in truth["missing"] + truth["high_motion"]}
    assert len(qc) == len(truth["subjects"]) * 4
    structural = qc[qc.modality.isin(["t1", "flair", "dwi"]) & (qc.status == "pass")]
    assert (structural.outside_fraction < 0.01).all() and structural.tiv_ml.notna().all()


def test_the_unstripped_heads_are_stripped_and_back_in_every_split(run):
    """deepbet's masks of the heads with scalp match the generator's brains (Dice), their
    stripped images are what QC passed and every later stage read, and their subjects are in
    every target's split, none excluded."""
    truth = json.loads((run / "results" / "demo" / "truth.json").read_text())
    qc = read_tsv(run / "results" / "qc.tsv").set_index(["subject", "modality"])
    splits = read_tsv(run / "results" / "splits.tsv")
    for head in truth["unstripped"]:
        subject, modality = head["subject"], head["modality"]
        row = qc.loc[(subject, modality)]
        assert row.status == "pass" and "desc-brain_" in row.path and row.path.startswith("results/skullstrip/")
        _, brain = demo.with_true_brain(truth["seed"], len(truth["subjects"]), subject, "t1")
        found = nib.load(run / row.brain_mask).get_fdata() > 0
        inside = brain.get_fdata() > 0
        assert 2 * (found & inside).sum() / (found.sum() + inside.sum()) > 0.92, subject
        placed = splits[splits.subject == subject]
        assert set(placed.target) == set(splits.target) and (placed.part != "excluded").all(), placed


def test_unstripping_reruns_qc_and_what_follows_not_the_brain_masks(run):
    jobs = planned(run, lambda c: c["skullstrip"].update(method="none"))
    assert {"qc_shard", "register_shard", "qc_table", "preprocess_shard", "train"} <= set(jobs)
    shards = config_of(run)["shards"]
    assert jobs["qc_shard"] == {f"shard={s:03d}" for s in range(shards)}
    assert not {"demo_cohort", "brain_mask_shard", "skullstrip_shard"} & set(jobs)


def test_every_subjects_images_lie_on_one_mni_grid(run):
    """Registered to MNI152, every demo subject's T1, FLAIR and MD share one grid, the same for
    everyone, and the head size registration removed is kept (it follows the generator's)."""
    affines = [nib.load(p).affine for p in (run / "results" / "preprocessed").glob("shard-*/sub-*_res-64_desc-preproc_*.nii.gz")]
    subjects = len(json.loads((run / "results" / "demo" / "truth.json").read_text())["subjects"])
    assert len(affines) > 3 * subjects - 6  # three images each, a few failed
    for affine in affines:
        np.testing.assert_allclose(affine, resample.mni_grid(64, 192), atol=1e-5)
    truth = json.loads((run / "results" / "demo" / "truth.json").read_text())["per_subject"]
    qc = read_tsv(run / "results" / "qc.tsv")
    t1 = qc[(qc.modality == "t1") & (qc.status == "pass")]
    assert (t1.registration == "affine to MNI152").all() and (t1.dice > 0.9).all()
    assert np.corrcoef(t1.head_scale, [truth[s]["head_scale"] for s in t1.subject])[0, 1] > 0.95
    # kept as a variable: the constitutional block's models read it
    fitted = json.loads((run / "results" / "models" / "hypertension__constitutional+serology" / "holdout" / "metrics.json").read_text())["fitted"]
    column = fitted["metadata"]["columns"].index("head_scale")
    assert fitted["metadata"]["mean"][column] == pytest.approx(t1.head_scale.mean(), abs=0.02)


def test_registered_region_means_match_the_templates(run):
    """A registered T1's atlas-region means (z-scored intensities, as the baselines read them)
    against the same regions of the MNI152 template preprocessed the same way. Demo subjects
    differ from the template by design (grey matter up to 15% thinner with age, larger
    ventricles, lesions, bias fields, noise): over 120 AAL regions their means differ from the
    template's by 0.13 z on average and correlate 0.9 with them. The same images centred on their
    own brains without registration (this workflow before it registered) differed by 0.31 and
    correlated 0.41: the bounds sit between."""
    atlas = nib.load(run / "results" / "atlas" / "baseline.nii.gz")
    mni = template.mni152(1)
    cube, affine = resample.preprocess(mni["t1"], mni["affine"], [64], 192, [0.5, 99.5], "zscore")[0][64]
    nib.save(nib.Nifti1Image(cube, affine), run / "template_res-64.nii.gz")
    reference = regions.region_means({("mni", "t1"): str(run / "template_res-64.nii.gz")}, atlas).iloc[0, 2:].astype(float)
    table = read_tsv(run / "results" / "regions.tsv")
    subjects = table[table.modality == "t1"].set_index("subject").filter(like="region_").astype(float)
    difference = (subjects - reference.to_numpy()).abs().mean(axis=1)
    correlation = subjects.apply(lambda means: np.corrcoef(means, reference)[0, 1], axis=1)
    assert difference.median() < 0.2 and correlation.median() > 0.8, (difference.describe(), correlation.describe())


def test_every_model_of_a_target_is_tested_on_the_same_subjects(run):
    splits = read_tsv(run / "results" / "splits.tsv")
    for target in ("sex", "age", "negative_control"):
        expected = set(splits[(splits.target == target) & (splits.part == "test")].subject)
        for model in (run / "results" / "models").glob(f"{target}__*"):
            assert set(read_tsv(run / "results" / "test_predictions" / f"{model.name}.tsv").subject) == expected
    excluded = splits[splits.part == "excluded"]
    assert (excluded.reason.str.len() > 0).all()  # listed with a reason, never silently dropped
    for target, parts in splits[splits.part != "excluded"].groupby("target"):  # stratified by the target itself
        if target in ("sex", "hypertension", "smoking"):
            values = read_tsv(run / "results" / "demo" / "bids" / "participants.tsv").set_index("participant_id")[target]
            classes = values.loc["sub-" + parts.subject]
            assert all(set(classes[parts.part.to_numpy() == p]) == set(classes) for p in ("train", "val", "test")), target


def test_the_augmentation_cache_holds_every_subject_with_an_image(run):
    """Each subject trains for some target (or fold), so each has its copies; a model reads those
    of its training subjects only (tests/test_train.py)."""
    cached = pd.concat([read_tsv(p) for p in (run / "results" / "augment").glob("shard-*.tsv")])
    preprocessed = pd.concat([read_tsv(p) for p in (run / "results" / "preprocessed").glob("shard-*.tsv")])
    assert set(cached.subject) == set(preprocessed.subject[preprocessed.status == "ok"])


def test_each_cell_shows_what_it_adds_to_its_comparators(run):
    """With confounds age and sex, every target has a confounds-only model, and each imaging
    cell's increment over it has an interval; the negative control's cell of images and metadata
    has its metadata alone as a comparator, with no configuration."""
    performance = read_tsv(run / "results" / "performance.tsv").set_index("model")
    for model in ("age__t1__64", "age__t1+flair+dwi__64", "age__connectivity"):
        row = performance.loc[model]
        assert row.confounds_comparator == "age__confounds" and row.confounds_delta_ci_low <= row.confounds_delta_score <= row.confounds_delta_ci_high
        assert row.confounds_delta_score == pytest.approx(row.score - performance.loc["age__confounds", "score"], abs=1e-9)
    mixed = performance.loc["negative_control__t1+flair+dwi+serology+disease__64"]
    assert mixed.comparator == "negative_control__serology+disease" and np.isfinite([mixed.delta_score, mixed.delta_ci_low, mixed.delta_p_value]).all()
    assert pd.isna(performance.loc["age__t1__64", "comparator"])  # nothing but imaging: no metadata comparator
    verdicts = read_tsv(run / "results" / "legibility.tsv").set_index("target")
    assert verdicts.loc["negative_control", "imaging_adds"] in ("yes", "no") and pd.isna(verdicts.loc["age", "imaging_adds"])


def test_no_network_falls_short_of_its_linear_baseline_unmarked(run):
    """A network starts from its baseline's predictions: where it ends more than 0.05 below, or
    predicts one value for everyone, the table says so (degenerate), never silently."""
    performance = read_tsv(run / "results" / "performance.tsv")
    behind = performance[performance.baseline_score - performance.score > 0.05]
    assert behind.degenerate.fillna("").astype(str).str.contains("below its linear baseline").all(), behind[["model", "score", "baseline_score"]]


def test_the_sfcn_soft_label_path_runs(run):
    """Peng et al.'s SFCN with soft labels trains on every demo, its predictions in years."""
    metrics = json.loads((run / "results" / "models" / "age__t1__64__sfcn" / "holdout" / "metrics.json").read_text())
    assert metrics["kind"] == "sfcn" and metrics["epochs"] >= 1 and np.isfinite(metrics["test"]["mae"])
    predictions = read_tsv(run / "results" / "test_predictions" / "age__t1__64__sfcn.tsv")
    assert predictions.prediction.between(40, 85).all()


def test_every_age_model_has_a_brain_age_gap_corrected_on_its_validation_subjects(run):
    """Age models (not the other continuous targets) get brain_age.tsv: every validation and
    test subject, its gap, and the gap less its trend on age fitted on validation subjects only."""
    from scipy import stats

    performance = read_tsv(run / "results" / "performance.tsv")
    expected = {m for m, t in zip(performance.model, performance.target) if t == "age"}
    assert {p.parent.name for p in (run / "results" / "models").glob("*/brain_age.tsv")} == expected
    for model in expected:
        table = read_tsv(run / "results" / "models" / model / "brain_age.tsv")
        predictions = read_tsv(run / "results" / "models" / model / "holdout" / "predictions.tsv")
        assert sorted(table.subject) == sorted(predictions.subject)
        val = table[table.split == "val"]
        fit = stats.linregress(val.age, val.gap)  # validation subjects only
        assert np.allclose(table.corrected_gap, table.gap - (fit.intercept + fit.slope * table.age)), model
        assert abs(np.corrcoef(val.age, val.corrected_gap)[0, 1]) < 0.05, model


def planned(run, change):
    """What a dry run would redo after `change(config)`: {rule: set of jobs' wildcard values}."""
    config = config_of(run)
    change(config)
    (run / "changed.yaml").write_text(yaml.safe_dump(config))
    return planned_jobs(run, run / "changed.yaml")


def trained(*models):
    """The train jobs of these models, as a dry run lists them (the demo trains one holdout)."""
    return {f"model={m}, fold=holdout" for m in models}


ANALYSES = {"domain_effects", "target_network", "training_cost", "dashboard"}  # what follows the tables


def image_models(run):
    return trained(*(m.name for m in (run / "results" / "models").iterdir() if "__64" in m.name))


def test_changed_augmentation_reruns_the_cache_and_image_models_only(run):
    jobs = planned(run, lambda c: c["augment"].update(rotate_deg=7))
    assert set(jobs) == {"augment_shard", "augment_index", "image_inputs", "train", "performance", "brain_age", "effective_config", "all", *ANALYSES}
    assert jobs["train"] == image_models(run)


def test_one_targets_learning_rate_reruns_its_models_only(run):
    def change(config):
        config["grid"].append({"targets": ["smoking"], "input_sets": [["constitutional", "disease"]], "training": {"lr": 0.001}})
        config["grid"] = [e for e in config["grid"] if e["targets"] != ["smoking"] or "training" in e]

    jobs = planned(run, change)
    assert set(jobs) == {"train", "performance", "effective_config", "all", *ANALYSES}
    assert jobs["train"] == trained("smoking__constitutional+disease")


def test_changed_atlas_reruns_connectivity_and_its_models_only(run):
    jobs = planned(run, lambda c: c["atlas"].update(n_regions=32))
    assert set(jobs) == {"atlas", "connectivity_shard", "connectivity_index", "connectivity_group", "train", "performance", "brain_age",
                         "effective_config", "all", *ANALYSES}  # fmt: skip
    assert jobs["train"] == trained(*(m.name for m in (run / "results" / "models").iterdir() if "connectivity" in m.name))


def test_changed_registration_reruns_it_and_what_follows_not_qc_or_connectivity(run):
    jobs = planned(run, lambda c: c["registration"].update(levels_mm=[8, 4, 2]))
    assert {"register_shard", "qc_table", "preprocess_shard", "region_means_shard", "mind_shard", "augment_shard", "train"} <= set(jobs)
    assert not {"demo_cohort", "brain_mask_shard", "skullstrip_shard", "qc_shard", "connectivity_shard", "atlas"} & set(jobs)


def test_changed_statistics_rerun_the_tables_only(run):
    jobs = planned(run, lambda c: c.update(statistics={"permutations": 999}))
    assert set(jobs) == {"performance", "effective_config", "all", *ANALYSES}


def test_changed_analysis_settings_rerun_the_analyses_only(run):
    jobs = planned(run, lambda c: c.update(analysis={"edge_share": 0.5, "confidence": 0.9}))
    assert set(jobs) == {"target_network", "training_cost", "dashboard", "effective_config", "all"}


def test_a_new_target_trains_only_its_models(run):
    jobs = planned(run, lambda c: c["grid"].append({"targets": ["bmi"], "input_sets": [["t1"], ["serology"]]}))
    assert set(jobs) == {"target_split", "splits_table", "train", "performance", "effective_config", "all", *ANALYSES}
    assert jobs["train"] == trained("bmi__t1__64", "bmi__serology", "bmi__confounds")  # its comparator too
    assert "augment_shard" not in jobs  # the cache is untouched


def test_a_bundle_exported_from_the_demo_and_fine_tuned_from(run):
    """`snakemake results/bundles/<model>.tar` exports a model; a grid entry with
    training.init_from that bundle trains its own models (only those) from it."""
    from legibility import bundle

    run_snakemake(run, "results/bundles/age__t1__64.tar")
    card, states = bundle.read(run / "results" / "bundles" / "age__t1__64.tar")
    effective = yaml.safe_load((run / "results" / "config.yaml").read_text())
    assert card["preprocessing"]["registration"] == effective["registration"] and card["preprocessing"]["space"] == effective["inputs"]["space"]
    atlas = (run / "results" / "atlas" / "baseline.nii.gz").read_bytes()
    assert card["atlases"]["baseline"]["sha256"] == bundle.sha256(atlas)
    row = read_tsv(run / "results" / "performance.tsv").set_index("model").loc["age__t1__64"]
    assert card["performance"]["score"] == pytest.approx(row.score) and card["folds"]["holdout"]["n_test"] == row.n_test
    assert states["holdout"].keys() == torch_load(run / "results" / "models" / "age__t1__64" / "holdout" / "model.pt").keys()
    tuned = {"targets": ["bmi"], "input_sets": [["t1"]], "training": {"init_from": "results/bundles/age__t1__64.tar"}}
    jobs = planned(run, lambda c: c["grid"].append(tuned))
    assert jobs["train"] == trained("bmi__t1__64", "bmi__confounds")  # the comparator from scratch (its settings are the defaults)


def torch_load(path):
    import torch

    return torch.load(path, weights_only=True)


def test_report(run):
    run_snakemake(run, "--report", str(run / "report.zip"))
    import zipfile

    names = zipfile.ZipFile(run / "report.zip").namelist()
    for figure in ("domain_effects.png", "target_network.png", "training_cost.png", "mean_images.png", "performance_grid.png"):
        assert any(n.endswith(figure) for n in names), figure


def test_the_analyses_of_the_demos_grid(run):
    """The demo's grid is too small for some analyses: they say so rather than fail."""
    analysis = run / "results" / "analysis"
    effects = read_tsv(analysis / "domain_effects.tsv")
    assert set(effects.domain) == {"constitutional", "serology", "psychology", "disease"}
    fitted = effects[effects.term.notna()]
    assert set(fitted.domain) == {"constitutional"} and np.isfinite(fitted[["coef", "se", "p_value"]]).all(axis=None)
    assert "needs two" in effects.loc[effects.domain == "disease", "note"].iloc[0]  # hypertension alone
    assert "too few" in effects.loc[effects.domain == "psychology", "note"].iloc[0]  # 7 models of 2 targets
    mi = read_tsv(analysis / "mutual_information.tsv").set_index("target")
    assert sorted(mi.index) == sorted(mi.columns) == sorted(read_tsv(run / "results" / "legibility.tsv").target)
    cost = read_tsv(analysis / "training_cost.tsv")
    assert cost.jobs.sum() == len(read_tsv(run / "results" / "performance.tsv")) and (cost.device_hours > 0).all()
    means = sorted(p.name for p in (analysis / "mean_images").glob("*.nii.gz"))
    assert means == ["mean_res-64_FLAIR.nii.gz", "mean_res-64_MD.nii.gz", "mean_res-64_T1w.nii.gz"]
    t1 = nib.load(analysis / "mean_images" / "mean_res-64_T1w.nii.gz")
    np.testing.assert_allclose(t1.affine, resample.mni_grid(64, 192), atol=1e-5)


def test_the_dashboard_in_headless_chromium(run, tmp_path):
    """The demo's dashboard in a real browser with no network: no console error, its rows are
    legibility.tsv's, hovering a target shows its best model and inputs, clicking it lists its
    models with performance.tsv's scores, and the links lead to files that exist."""
    missing = [b for b in ("chromium", "chromedriver") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"no {' or '.join(missing)} here: apt-get install chromium chromium-driver, as .ci/run does")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (make install installs it)")
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9", "--window-size=1400,900"):
        options.add_argument(argument)  # every request that leaves the file would fail at the dead proxy, and log an error
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))
    try:
        driver.get((run / "results" / "dashboard.html").as_uri())
        legibility = read_tsv(run / "results" / "legibility.tsv").set_index("target")
        performance = read_tsv(run / "results" / "performance.tsv")
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.target")
        assert [r.get_attribute("data-target") for r in rows] == list(legibility.index)
        for row in rows:
            shown = {c.get_attribute("data-column"): c for c in row.find_elements(By.TAG_NAME, "td")}
            assert shown["verdict"].text == legibility.loc[row.get_attribute("data-target"), "verdict"]
        target = "age"
        best = performance[(performance.target == target) & (performance.cell == legibility.loc[target, "best_input_set"])].iloc[0]
        row = driver.find_element(By.CSS_SELECTOR, f'tr.target[data-target="{target}"]')
        webdriver.ActionChains(driver).move_to_element(row).perform()
        tooltip = driver.find_element(By.ID, "tooltip")
        assert tooltip.is_displayed() and f"best model {best.model}" in tooltip.text
        assert all(i in tooltip.text for i in ("t1", "flair", "dwi") if best[i] == "yes")
        row.click()
        listed = driver.find_elements(By.CSS_SELECTOR, "#models tr[data-model]")
        expected = performance[performance.target == target].set_index("model")
        assert sorted(r.get_attribute("data-model") for r in listed) == sorted(expected.index)
        for r in listed:
            values = {c.get_attribute("data-column"): c.get_attribute("data-value") for c in r.find_elements(By.CSS_SELECTOR, "td[data-column]")}
            model = expected.loc[r.get_attribute("data-model")]
            assert float(values["score"]) == pytest.approx(model.score) and float(values["ci_low"]) == pytest.approx(model.ci_low)
            for link in r.find_elements(By.TAG_NAME, "a"):
                assert Path(unquote(urlparse(link.get_attribute("href")).path)).exists(), link.get_attribute("href")
        driver.save_screenshot(str(tmp_path / "dashboard.png"))
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(r.startswith("file:") for r in resources), resources
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        driver.quit()


def test_lint_is_clean():
    result = run_snakemake(ROOT, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_predict_mode_applies_bundles_with_their_own_settings(run):
    """Last (it rewrites results/config.yaml): predict mode on the demo's own cohort, with its
    bundles. The demo's test subjects get the predictions their training jobs wrote, to the bit,
    an image model's included (both predict one subject at a time). A config that sets another
    atlas is refused, naming the setting."""
    models = ("age__t1__64", "sex__connectivity")
    config = config_of(run)
    config["predict"] = {"bundles": [f"results/bundles/{m}.tar" for m in models]}
    run_snakemake(run, *(f"results/bundles/{m}.tar" for m in models))
    (run / "predict.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(run, configfile=run / "predict.yaml")
    for model in models:
        new = read_tsv(run / "results" / "predictions" / f"{model}.tsv").set_index("subject")
        old = read_tsv(run / "results" / "models" / model / "holdout" / "predictions.tsv").query("split == 'test'").set_index("subject")
        assert new.filter(like="qc_").eq("pass").all(axis=1).sum() == new.prediction.notna().sum() > len(old)
        for column in [c for c in old.columns if c in new.columns]:
            assert new.loc[old.index, column].equals(old[column]), (model, column)
        summary = json.loads((run / "results" / "predictions" / f"{model}.json").read_text())
        headline = "r2" if model.startswith("age") else "balanced_accuracy"  # the cohort has the target: scored, with an interval
        assert summary["n_scored"] == summary["n_predicted"] and headline in summary["test"] and summary["interval"]
    # on a cluster, the image model predicts on a GPU, as it trained
    plan = run_snakemake(run, "-n", "-f", "results/predictions/age__t1__64.tsv", configfile=run / "predict.yaml").stdout
    assert "gpu=1" in plan.split("rule predict:")[1].split("resources:")[1].splitlines()[0]
    config["atlas"] = {**config["atlas"], "n_regions": 32}
    (run / "other_atlas.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(run, "-n", configfile=run / "other_atlas.yaml", check=False)
    assert result.returncode != 0 and "results/bundles/sex__connectivity.tar was trained with atlas.n_regions = 64; this config sets 32" in result.stdout + result.stderr
