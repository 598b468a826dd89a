import copy

import pytest
import yaml

from conftest import ROOT, validated
from legibility.grid import ConfigError, expand_grid, input_sets, model_name, target_modalities


def test_demo_config_validates_and_gets_schema_defaults(demo_config):
    # set in config.yaml
    assert demo_config["shards"] == 2
    # not set there: filled from the schema, including nested sections
    assert demo_config["qc"]["max_anisotropy"] == 3.0
    assert demo_config["mind"]["features"] == ["t1", "flair", "dwi"] and demo_config["mind"]["resolution"] == 64
    assert demo_config["preprocess"]["resolutions"] == [128, 64]
    assert demo_config["training"]["weight_decay"] == 0.01
    assert demo_config["grid"][0]["resolution"] == 64


def test_schema_rejects_a_bad_setting():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["preprocess"] = {"normalise": "whiten"}
    with pytest.raises(Exception, match="whiten"):
        validated(config)


def test_real_data_template_validates():
    config = validated(yaml.safe_load((ROOT / "config" / "bids.yaml").read_text()))
    assert not config["demo"]["enabled"]
    assert config["model"]["channels"] == [32, 64, 128, 256, 256]  # full-size models for real data


def test_grid_expands_to_readable_stable_names(demo_config):
    specs = expand_grid(demo_config)
    assert "age__t1+flair+dwi__64" in specs
    assert "sex__connectivity" in specs  # no resolution without images
    assert specs["age__t1+flair+dwi__64"].images == ("t1", "flair", "dwi")
    # canonical input order, whatever order the config lists them in
    assert model_name("age", ["t1", "flair"], 64) == "age__t1+flair__64"
    cells = sum(len(e["targets"]) * len(e["input_sets"]) for e in demo_config["grid"])
    assert list(specs)[cells:] == [f"{t}__confounds" for t in ("sex", "age", "negative_control", "hypertension", "smoking")]
    # the negative control's cell of images and metadata has its comparator, its metadata alone, listed in the grid already
    assert "negative_control__serology+disease" in list(specs)[:cells] and "negative_control__t1+flair+dwi+serology+disease__64" in specs


def test_comparators_are_trained_without_being_listed(demo_config):
    config = copy.deepcopy(demo_config)
    config["grid"] = [{"targets": ["hypertension"], "input_sets": [["t1", "constitutional", "psychology"]], "training": {"lr": 0.1}}]
    config["phenotypes"]["variables"]["hypertension"]["exclude"] = ["age"]  # say, a proxy
    specs = expand_grid(config)
    assert list(specs) == ["hypertension__t1+constitutional+psychology__64", "hypertension__constitutional+psychology", "hypertension__confounds"]
    metadata, confounds = specs["hypertension__constitutional+psychology"], specs["hypertension__confounds"]
    assert metadata.inputs == ("constitutional", "psychology") and metadata.training["lr"] == demo_config["training"]["lr"]  # the defaults
    assert confounds.confounds == ("sex",) and not confounds.deconfound  # never the target's proxies
    assert not specs["hypertension__t1+constitutional+psychology__64"].confounds  # read only where deconfounded
    config["confounds"] = {"variables": [], "site": None, "deconfound": False}
    assert "hypertension__confounds" not in expand_grid(config)
    config["confounds"] = {"variables": ["age", "sex"], "site": None, "deconfound": True}
    assert expand_grid(config)["hypertension__t1+constitutional+psychology__64"].confounds == ("sex",)
    config["confounds"] = {"variables": ["age", "weight"], "site": None, "deconfound": False}
    with pytest.raises(ConfigError, match="confounds: weight not among phenotypes.variables"):
        expand_grid(config)
    config["confounds"] = {"variables": [], "site": "age", "deconfound": False}
    with pytest.raises(ConfigError, match="site: age is continuous"):
        expand_grid(config)


def test_a_model_may_not_read_its_targets_own_block(demo_config):
    config = copy.deepcopy(demo_config)
    config["grid"] = [{"targets": ["hba1c"], "input_sets": [["serology"]], "resolution": 64}]
    with pytest.raises(ConfigError, match="own metadata block 'serology'"):
        expand_grid(config)


def test_unknown_target_and_unknown_override_are_named(demo_config):
    config = copy.deepcopy(demo_config)
    config["grid"] = [{"targets": ["hba1d"], "input_sets": [["t1"]]}]
    with pytest.raises(ConfigError, match="'hba1d'"):
        expand_grid(config)
    config["grid"] = [{"targets": ["age"], "input_sets": [["t1"]], "training": {"learning_rate": 1}}]
    with pytest.raises(ConfigError, match="learning_rate"):
        expand_grid(config)


def test_overrides_reach_only_their_models(demo_config):
    config = copy.deepcopy(demo_config)
    config["grid"].append({"targets": ["bmi"], "input_sets": [["t1"]], "training": {"lr": 0.5}})
    specs = expand_grid(config)
    assert specs["bmi__t1__64"].training["lr"] == 0.5
    assert specs["age__t1__64"].training["lr"] == demo_config["training"]["lr"]


def test_resources_do_not_change_a_models_identity(demo_config):
    config = copy.deepcopy(demo_config)
    config["training"]["threads"] = 16
    config["training"]["mem_mb"] = 99999
    before, after = expand_grid(demo_config), expand_grid(config)
    assert before["age__t1__64"].identity() == after["age__t1__64"].identity()
    config["training"]["lr"] = 0.123
    assert expand_grid(config)["age__t1__64"].identity() != before["age__t1__64"].identity()


def test_target_modalities_cover_every_model_of_the_target(demo_config):
    needed = target_modalities(expand_grid(demo_config))
    assert needed["age"] == ["t1", "flair", "dwi", "bold"]
    assert needed["smoking"] == []


def test_mind_models_need_the_images_their_features_come_from(demo_config):
    demo_config["grid"] = [{"targets": ["sex"], "input_sets": [["mind"]]}, {"targets": ["bmi"], "input_sets": [["mind", "t1"]]}]
    demo_config["mind"]["features"] = ["t1", "dwi_gradient"]
    specs = expand_grid(demo_config)
    assert specs["sex__mind"].resolution is None and specs["sex__mind"].vectors == ("mind",)
    assert specs["sex__mind"].raw_modalities == ("t1", "dwi")  # a subject whose DWI failed QC has no MIND network
    assert specs["bmi__t1+mind__64"].images == ("t1",)
    assert target_modalities(specs) == {"sex": ["t1", "dwi"], "bmi": ["t1", "dwi"]}


def test_key_order_does_not_matter(demo_config):
    from legibility.config import validated

    shuffled = {k: demo_config[k] for k in reversed(list(demo_config))}
    shuffled["augment"] = {k: demo_config["augment"][k] for k in reversed(list(demo_config["augment"]))}
    assert repr(validated(shuffled)) == repr(validated(demo_config))


def test_combine_expresses_all_combinations():
    entry = {"targets": ["hba1c"], "combine": [[{"subsets_of": ["t1", "flair", "dwi"]}, ["connectivity"]],
                                               [[], ["constitutional"], ["psychology", "constitutional"]]]}  # fmt: skip
    sets = input_sets(entry)
    assert len(sets) == 8 * 3 and len(set(sets)) == 24
    assert ("t1", "flair", "dwi") in sets and ("connectivity", "constitutional", "psychology") in sets  # canonical order
    assert input_sets({"targets": ["x"], "combine": [[[], ["t1"]], [[]]]}) == [("t1",)]  # the empty union is dropped
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["grid"] = [{"targets": ["age"], "input_sets": [["t1"]], "combine": [[["t1"]]]}]
    with pytest.raises(Exception, match="valid under each of|is valid under"):
        validated(config)  # one or the other, not both


def test_image_models_ask_for_a_gpu_and_the_others_for_modest_cpu_resources(demo_config):
    config = copy.deepcopy(demo_config)
    config["training"].update(threads=8, gpu=1, mem_mb=32000, runtime=600)
    config["grid"].append({"targets": ["bmi"], "input_sets": [["serology"]], "training": {"without_images": {"mem_mb": 9000}}})
    specs = expand_grid(config)
    assert specs["age__t1__64"].resources == {"threads": 8, "gpu": 1, "mem_mb": 32000, "runtime": 600}
    defaults = demo_config["training"]["without_images"]  # the demo's threads, the schema's mem_mb and runtime
    assert defaults == {"threads": 1, "mem_mb": 4000, "runtime": 120}
    assert specs["sex__connectivity"].resources == {**defaults, "gpu": 0}
    assert specs["sex__mind"].resources["gpu"] == 0
    # a grid entry overrides one resource of a nested section, keeping the others
    assert specs["bmi__serology"].resources == {**defaults, "mem_mb": 9000, "gpu": 0}
    assert specs["bmi__serology"].identity() == expand_grid(demo_config | {"grid": [{"targets": ["bmi"], "input_sets": [["serology"]]}]})["bmi__serology"].identity()
