# Config validation, input discovery and the helpers rules share.

import copy
import functools
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import min_version, validate

min_version("9.0")

# The package lives in src/; Snakemake hands this sys.path to rule scripts, so they find it
# even where it is not pip-installed.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from legibility import BOLD, MIND, MODALITIES, connectivity, demo, grid, inputs, jobs, predict, shards, splits  # noqa: E402
from legibility.config import canonical_order  # noqa: E402
from legibility.dag import per_job, trim_snakemake_overhead  # noqa: E402

_written = copy.deepcopy(config)  # the config file as written, before the schema's defaults
validate(config, "../schemas/config.schema.yaml")
canonical_order(config)  # reordered keys in a config file must not rerun anything

try:
    # predict mode: each bundle's preprocessing settings replace the config's
    PREDICT = predict.adopt(config, _written) if config["predict"]["bundles"] else {}
    if not config.setdefault("grid", []) and not PREDICT:
        raise grid.ConfigError("the config has no grid (models to train) and no predict.bundles (models to apply)")
    SPECS = grid.expand_grid(config) if config["grid"] else {}
    PREDICT_SPECS = {m: grid.ModelSpec.from_dict(card["spec"]).on_this_cluster(config["training"]) for m, (_, card) in PREDICT.items()}
    if config["demo"]["enabled"]:
        _plan = demo.plan(config["demo"]["n_subjects"], config["seed"], config["demo"]["unstripped"])
        IMAGES, REJECTED = demo.image_paths(_plan, config["inputs"]["root"], config["inputs"]["templates"]), []
    else:
        STAMPS = {}  # path -> stamp, from the stat that found the file
        IMAGES, REJECTED = inputs.discover(config["inputs"]["root"], config["inputs"]["templates"],
                                           config["inputs"]["include"], config["inputs"]["exclude"], STAMPS)  # fmt: skip
        inputs.add_masks(IMAGES, config["inputs"]["root"], config["inputs"]["masks"])
    SUBJECTS = sorted(IMAGES)
    if not SUBJECTS:
        raise grid.ConfigError(f"no subject found under {config['inputs']['root']} with the path templates in inputs.templates")
    # a user's table is checked before any job; the demo's is made by a rule, from this generator
    _pheno, _demo = config["phenotypes"], config["demo"]["enabled"]
    PHENOTYPES = inputs.read_phenotypes(_pheno["path"], _pheno["subject_column"], _pheno["strip_prefix"], _pheno["variables"],
                                        None if _demo or _pheno["allow_rows_without_images"] else SUBJECTS,
                                        raw=demo.phenotypes(SUBJECTS, config["seed"]).astype(str) if _demo else None).values  # fmt: skip
except grid.ConfigError as error:
    raise WorkflowError(str(error))

EXPECTED = [m for m in (*MODALITIES, BOLD, "connectome") if m in config["inputs"]["templates"]]
# connectivity comes from BOLD series, or from matrices the data provider computed
CONNECTIVITY_FROM = "connectome" if "connectome" in config["inputs"]["templates"] else BOLD
TANGENT = config["connectivity"]["kind"] == "tangent"
# how connectivity_group's README says the signals were denoised: from the confounds table, if any
DENOISING = {"settings": config["connectivity"], "source": CONNECTIVITY_FROM, "confounds_table": "confounds" in config["inputs"]["templates"]}
if CONNECTIVITY_FROM in EXPECTED and CONNECTIVITY_FROM == BOLD and not DENOISING["confounds_table"] and not workflow.remote_exec:
    logger.warning(connectivity.NO_CONFOUNDS)
# censoring is the connectivity stage's, but whether enough volumes survive it decides eligibility
QC_THRESHOLDS = {**config["qc"], "censor_fd": config["connectivity"]["censor_fd"]}
_needed = {CONNECTIVITY_FROM if m == BOLD else m for spec in SPECS.values() for m in spec.raw_modalities} - set(EXPECTED)
if _needed:
    raise WorkflowError(f"the grid uses {', '.join(sorted(_needed))} but inputs.templates has no template for it")
USES_MIND = any(MIND in spec.inputs for spec in (*SPECS.values(), *PREDICT_SPECS.values()))
if USES_MIND and config["mind"]["resolution"] not in config["preprocess"]["resolutions"]:
    raise WorkflowError(f"mind.resolution {config['mind']['resolution']} is not one of preprocess.resolutions {config['preprocess']['resolutions']}")

REGISTRATION = {**config["registration"], "space": config["inputs"]["space"]}
# what the learned brain mask depends on (not skullstrip.method: QC reads it either way)
BRAIN_MASK = {k: config["skullstrip"][k] for k in ("threshold", "mask_ml", "input_size")}
STRIPS = config["skullstrip"]["method"] == "deepbet"
SHARDS = {f"{k:03d}": members for k, members in shards.members(SUBJECTS, config["shards"]).items()}
SPLIT = splits.settings_of(config)  # stratified by the site too, where one is declared
_derived = sorted({spec.target for spec in SPECS.values()} | set(SPLIT["stratify_by"]))
_derived = [n for n in _derived if config["phenotypes"]["variables"].get(n, {}).get("source", "table") != "table"]
if _derived:
    raise WorkflowError(f"{', '.join(_derived)}: a variable derived from the images (source: registration or skullstrip) is a feature, not a target or stratum")
_unknown = sorted(set(config["split"]["stratify_by"]) - set(config["phenotypes"]["variables"]))
if _unknown:
    raise WorkflowError(f"split.stratify_by: {', '.join(_unknown)} not among phenotypes.variables")
FOLDS = splits.folds(config["split"])  # one training job per fold of each model (or the holdout)
N_FOLDS = len(FOLDS) if config["split"]["scheme"] == "kfold" else None
MODELS = sorted(SPECS)
TARGETS = sorted({spec.target for spec in SPECS.values()})
# continuous age models get a brain-age gap, bias-corrected (legibility.brain_age); not those
# that learn age residualised on confounds, whose "age" is a residual
BRAIN_AGE_MODELS = [m for m, s in SPECS.items() if s.target in config["brain_age"]["targets"] and s.target_type == "continuous"
                    and not (s.deconfound and s.confounds)]  # fmt: skip
TARGET_MODALITIES = {t: [CONNECTIVITY_FROM if m == BOLD else m for m in ms] for t, ms in grid.target_modalities(SPECS).items()}
RESOLUTIONS = grid.image_resolutions({**SPECS, **PREDICT_SPECS})  # packed for models; NIfTI for every configured one
# where the phenotype table is and how to read it; variable declarations go to rules one by one
PHENOTYPE_FILE = {k: config["phenotypes"][k] for k in ("path", "subject_column", "strip_prefix")}


wildcard_constraints:
    shard=r"\d+",
    res=r"\d+",
    fold=r"holdout|fold-\d+",
    # patterns, not lists of names: Snakemake writes constraints into every file pattern it
    # matches, and 700 model names there slow the DAG's construction tenfold
    target=r"[A-Za-z][A-Za-z0-9_]*",
    model=r"[A-Za-z][A-Za-z0-9_+]*",


trim_snakemake_overhead()  # the same work at every job, done once
jobs.keep_freed_memory(os.environ)  # every job Snakemake starts, here or on a cluster node


@per_job
def shard_images(wildcards):
    """subject -> {modality: path} for the shard's subjects."""
    return {s: IMAGES[s] for s in SHARDS[wildcards.shard]}


@per_job
def cohort_files(wildcards):
    """The demo's images come from its rule. A user's already exist and are not Snakemake inputs
    (at UK Biobank scale, 95,000 of them would slow every DAG build several-fold): each QC job
    carries its files' `stamps` instead, and whatever reads images follows QC."""
    return [rules.demo_cohort.output.truth] if config["demo"]["enabled"] else []


@per_job
def qc_inputs(wildcards):
    files = {"cohort": cohort_files(wildcards), "brain": f"results/brain/shard-{wildcards.shard}.tsv"}
    if STRIPS:
        files["stripped"] = f"results/skullstrip/shard-{wildcards.shard}"
    return files


@per_job
def qc_strip(wildcards):
    """Where the brain-extracted images QC checks instead of the originals are (None: nowhere)."""
    return {"folder": f"results/skullstrip/shard-{wildcards.shard}", "modalities": config["skullstrip"]["modalities"]} if STRIPS else None


@per_job
def shard_stamps(wildcards):
    """(modification time, size) of the shard's files: a file replaced, added or removed reruns
    its shard's QC and all that follows from it (the demo's files are tracked through its rule).
    A brain mask is listed even where it is missing (None), so that it appearing reruns QC."""
    if config["demo"]["enabled"]:
        return {}
    return {p: STAMPS[p] if p in STAMPS else inputs.stamp(p) for s in SHARDS[wildcards.shard] for p in IMAGES[s].values()}


def variables(names):
    return {n: config["phenotypes"]["variables"][n] for n in names}


def per_shard(pattern, **wildcards):
    return expand(pattern, shard=sorted(SHARDS), **wildcards)


@per_job
def target_modalities(wildcards):
    return TARGET_MODALITIES[wildcards.target]


@per_job
def split_variables(wildcards):
    """The target's declaration and those of the variables the split is stratified by."""
    return variables(dict.fromkeys([wildcards.target, *SPLIT["stratify_by"]]))


@per_job
def train_inputs(wildcards):
    """A model reads each stage through its index (one table naming every shard's packed array):
    a few inputs per job rather than several per shard keep the DAG small at any cohort size."""
    return dict(_train_inputs(wildcards.model, wildcards.fold))  # a copy: Snakemake may change it


@functools.cache
def _train_inputs(model, fold):
    spec = SPECS[model]
    files = {"split": f"results/splits/target-{spec.target}.tsv", "phenotypes": config["phenotypes"]["path"]}
    if spec.training.get("init_from"):  # a new bundle at the same path retrains
        files["init_from"] = spec.training["init_from"]
    if any(v.get("source", "table") != "table" for v in _model_variables(model).values()):
        files["qc"] = "results/qc.tsv"  # the head scale registration found, the brain mask's volume
    if spec.images:  # the preprocessed and augmented images and their region means
        files["images"] = f"results/training_inputs/images_res-{spec.resolution}.json"
    if spec.uses_connectivity:  # tangent space: around the mean of this fold's training subjects
        tangent = f"results/connectivity/tangent/target-{spec.target}_{fold}.tsv"
        files["connectivity"] = tangent if TANGENT else "results/connectivity/index.tsv"
    if MIND in spec.inputs:
        files["mind"] = "results/mind/index.tsv"
    return files


@per_job
def connectivity_inputs(wildcards):
    files = {"qc": f"results/qc/shard-{wildcards.shard}.tsv"}
    if CONNECTIVITY_FROM == BOLD:
        files["atlas"] = "results/atlas/atlas.nii.gz"
    return files


@per_job
def model_params(wildcards):
    """What determines the model's results (not its resources): changed, it retrains. The
    declarations are the target's and those of the metadata variables the model reads (only
    those, so editing another variable does not retrain it)."""
    return _model_params(wildcards.model)


@functools.cache  # one per model, not per fold: k-fold grids have thousands of training jobs
def _model_params(model):
    return {"spec": SPECS[model].identity(), "variables": _model_variables(model)}


@functools.cache
def _model_variables(model):
    """The target's declaration and those of the variables it reads (its proxies excluded) or is
    residualised on."""
    spec = SPECS[model]
    return variables(dict.fromkeys([spec.target, *grid.variables_read(spec, config["phenotypes"]["variables"]), *spec.confounds]))


def model_setting(key):
    @per_job
    def setting(wildcards):
        return SPECS[wildcards.model].training[key]

    return setting


def model_resource(key, specs=SPECS):
    """Image models ask for a GPU and training.{threads, mem_mb, runtime}; models that read no
    image for modest CPU resources (training.without_images). A bundle's model applied in
    predict mode asks for what this config's training settings give it."""

    @per_job
    def resource(wildcards):
        return specs[wildcards.model].resources[key]

    return resource


def bundle_atlases(wildcards):
    """The atlas files that shaped a model's inputs: their SHA-256 goes in its card."""
    spec = SPECS[wildcards.model]
    files = {"baseline": "results/atlas/baseline.nii.gz"} if spec.images else {}
    if spec.uses_connectivity and CONNECTIVITY_FROM == BOLD:
        files["atlas"] = "results/atlas/atlas.nii.gz"
    if MIND in spec.inputs:
        files["mind"] = "results/atlas/mind.nii.gz"
    return files


def predict_inputs(wildcards):
    """What a bundle's model reads of the new cohort (the images and region means at its grid,
    its connectivity or MIND), beside the bundle, QC and the phenotype table."""
    path, card = PREDICT[wildcards.model]
    spec = PREDICT_SPECS[wildcards.model]
    files = {"bundle": path, "qc": "results/qc.tsv", "phenotypes": config["phenotypes"]["path"]}
    if spec.images:
        files.update(preprocess=f"results/preprocessed/index_res-{spec.resolution}.tsv", regions="results/regions.tsv")
    if spec.uses_connectivity:
        files["connectivity"] = "results/connectivity/index.tsv"
    if MIND in spec.inputs:
        files["mind"] = "results/mind/index.tsv"
    return files


def predict_variables(model):
    """The variables a bundle's model reads, and its target where this cohort declares it (to score it)."""
    card = PREDICT[model][1]
    return [*card["variables_read"], *([card["target"]["name"]] if card["target"]["name"] in config["phenotypes"]["variables"] else [])]
