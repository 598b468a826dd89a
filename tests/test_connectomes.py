"""A dataset that ships connectivity matrices instead of BOLD series, end to end."""

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_snakemake
from legibility.io import read_tsv

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("connectomes")
    draw = np.random.default_rng(4)
    subjects = [f"{1000000 + i}" for i in range(24)]
    sex = draw.integers(0, 2, len(subjects))
    for subject, male in zip(subjects, sex):
        folder = workdir / "ukb" / subject / "fMRI"
        folder.mkdir(parents=True)
        latent = draw.normal(size=(200, 10))
        latent[:, 1] += 0.8 * male * latent[:, 0]  # men: regions 0 and 1 coupled
        np.savetxt(folder / "rfMRI_full_correlation.txt", np.corrcoef(latent.T), fmt="%.6f")
    (workdir / "ukb" / "1000099" / "fMRI").mkdir(parents=True)
    (workdir / "ukb" / "1000099" / "fMRI" / "rfMRI_full_correlation.txt").write_text("not,a\nmatrix\n")
    pd.DataFrame({"eid": subjects + ["1000099"], "sex": [["F", "M"][m] for m in sex] + ["F"]}).to_csv(workdir / "pheno.csv", index=False)
    config = {
        "demo": {"enabled": False},
        "inputs": {"root": str(workdir / "ukb"), "templates": {"connectome": "{subject}/fMRI/rfMRI_full_correlation.txt"}},
        "phenotypes": {"path": str(workdir / "pheno.csv"), "subject_column": "eid", "strip_prefix": "",
                       "variables": {"sex": {"type": "binary", "block": "constitutional", "levels": ["F", "M"]}}},
        "shards": 2,
        "split": {"scheme": "holdout"},
        "training": {"epochs": 3, "patience": 3, "threads": 1, "workers": 0, "gpu": 0},
        "grid": [{"targets": ["sex"], "input_sets": [["connectivity"]]}],
    }  # fmt: skip
    (workdir / "study.yaml").write_text(yaml.safe_dump(config))
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(workdir)
    return workdir


def test_matrices_are_read_checked_and_modelled(study):
    qc = read_tsv(study / "results" / "qc.tsv").set_index("subject")
    assert set(qc.modality) == {"connectome"}
    assert qc.loc["1000099", "status"] == "fail" and "connectome:" in qc.loc["1000099", "reasons"]
    assert (qc.drop(index="1000099").status == "pass").all()
    metrics = read_tsv(study / "results" / "performance.tsv")
    assert list(metrics.model) == ["sex__connectivity"] and metrics.n_test[0] > 0
    assert not (study / "results" / "atlas").exists()  # no atlas is needed
    assert (study / "results" / "connectivity" / "group_mean.png").exists()
