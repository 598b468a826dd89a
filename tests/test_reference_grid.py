"""The reference study's 700-model grid, as a config, expands to 700 training jobs (with a holdout) and their
comparators' 88."""

import pandas as pd
import yaml

from conftest import ROOT, planned_jobs, validated
from legibility.grid import expand_grid


def test_the_reference_grid_is_700_model_jobs(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "reference_grid.yaml").read_text())
    subjects = [str(1000001 + i) for i in range(12)]  # UK Biobank eids
    for subject in subjects:  # a dry run only lists the files
        for template in config["inputs"]["templates"].values():
            path = tmp_path / "ukb" / template.format(subject=subject)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    values = {}
    for name, variable in config["phenotypes"]["variables"].items():
        levels = variable.get("levels")
        values[name] = [levels[i % len(levels)] for i in range(12)] if levels else [50.0 + i for i in range(12)]
    pd.DataFrame({"eid": subjects, **values}).to_csv(tmp_path / "phenotypes.tsv", sep="\t", index=False)
    config["split"] = {"scheme": "holdout"}  # one training job per model: a quicker dry run (k-fold: bench_dag_scale.py)
    config["inputs"]["root"] = str(tmp_path / "ukb")
    config["phenotypes"]["path"] = str(tmp_path / "phenotypes.tsv")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))

    assert len(planned_jobs(tmp_path, tmp_path / "config.yaml")["train"]) == 788
    specs = expand_grid(validated(config))
    names = list(specs)
    cells, comparators = names[:700], names[700:]  # the grid's cells first
    assert len(set(names)) == 788 and "hba1c__t1+flair+dwi+constitutional+psychology__64" in cells
    # each target's metadata-only sets (21 targets x 3 block sets) and its confounds alone (25)
    assert len([n for n in comparators if n.endswith("__confounds")]) == 25 and "hba1c__constitutional+psychology" in comparators
    assert specs["age__confounds"].confounds == ("sex",) and specs["hba1c__confounds"].confounds == ("age", "sex")
    assert not any(specs[n].imaging for n in comparators)
    # no model of a target reads that target's own metadata block
    assert not [s for s in specs.values() if s.target_block in s.inputs]
