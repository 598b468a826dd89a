"""The install contract: one set of pins for pip and conda, covering every dependency."""

import base64
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
    # what pip installs without dependencies, the conda environment installs after it is made
    post_deploy = (ROOT / "envs" / "legibility.post-deploy.sh").read_text()
    for name, version in pins((ROOT / "requirements-nodeps.lock").read_text().splitlines()).items():
        assert f"pip install --no-deps {name}=={version}" in post_deploy


def test_deepbet_imports_with_its_weights_and_without_its_gui():
    """deepbet is installed without dependencies: what it needs at run time is there, its GUI
    toolkit is not, and the weights its wheel ships are the ones the sidecars name."""
    import importlib.util
    from importlib.metadata import files

    from legibility import skullstrip

    import deepbet

    assert deepbet.BrainExtraction(no_gpu=True).model is not None
    assert importlib.util.find_spec("customtkinter") is None
    recorded = {f.name: f.hash.value for f in files("deepbet") if f.name.endswith(".pt")}
    assert set(recorded) == {"model.pt", "bbox_model.pt"}
    for name, digest in skullstrip.model_checksums().items():  # RECORD: urlsafe base64 sha256
        assert base64.urlsafe_b64encode(bytes.fromhex(digest)).rstrip(b"=").decode() == recorded[name]


def test_every_dependency_is_pinned():
    locks = [(ROOT / name).read_text().splitlines() for name in ("requirements.lock", "requirements-nodeps.lock")]
    lock = {name.lower().replace("_", "-") for lines in locks for name in pins(lines)}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    names = {re.match(r"[A-Za-z0-9_.-]+", spec).group().lower().replace("_", "-") for spec in wanted}
    assert names <= lock, names - lock


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme and "make demo-check" in readme
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make ")]
    assert commands == ["make test", "make demo-check"]  # the suite, then the README's claims on a full demo
