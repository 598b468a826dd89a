"""The install contract: one set of pins for pip and conda, covering every dependency."""

import re
import tomllib

import yaml

from conftest import ROOT


def pins(lines):
    return dict(line.strip().split("==") for line in lines if line.strip() and not line.lstrip().startswith("#"))


def test_conda_env_has_the_lock_files_pins():
    lock = pins((ROOT / "requirements.lock").read_text().splitlines())
    env = yaml.safe_load((ROOT / "envs" / "legibility.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pins(pip) == lock
    assert lock["torch"] == "2.13.0"


def test_every_dependency_is_pinned():
    lock = {name.lower().replace("_", "-") for name in pins((ROOT / "requirements.lock").read_text().splitlines())}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    names = {re.match(r"[A-Za-z0-9_.-]+", spec).group().lower().replace("_", "-") for spec in wanted}
    assert names <= lock, names - lock


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")
