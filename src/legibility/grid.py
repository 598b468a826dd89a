"""The model grid: which target is predicted from which inputs, one model per cell."""

import itertools
from dataclasses import asdict, dataclass, replace

from . import BLOCKS, BOLD, CONFOUNDS, CONNECTIVITY, IMAGING, MIND, MODALITIES, VECTORS

INPUT_ORDER = (*MODALITIES, CONNECTIVITY, MIND, *BLOCKS, CONFOUNDS)
RESOURCE_KEYS = ("threads", "workers", "mem_mb", "runtime", "gpu", "without_images")  # change speed, not results


class ConfigError(ValueError):
    """A configuration that cannot work, with a message naming the setting."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    target: str
    target_type: str
    target_block: str
    inputs: tuple
    resolution: int | None  # None when the model reads no image
    kind: str
    training: dict
    model: dict
    mind_images: tuple = ()  # the preprocessed images MIND features come from, when it is an input
    # the confounds it reads (its input `confounds`) or that its target and features are
    # residualised on (deconfound): config confounds, less its target and the target's proxies
    confounds: tuple = ()
    deconfound: bool = False

    @property
    def images(self) -> tuple:
        return tuple(i for i in self.inputs if i in MODALITIES)

    @property
    def blocks(self) -> tuple:
        return tuple(i for i in self.inputs if i in BLOCKS)

    @property
    def vectors(self) -> tuple:
        return tuple(i for i in self.inputs if i in VECTORS)

    @property
    def imaging(self) -> tuple:
        """What it reads of the brain: images, connectivity, MIND."""
        return tuple(i for i in self.inputs if i in IMAGING)

    @property
    def reads_metadata(self) -> bool:
        return bool(self.blocks) or CONFOUNDS in self.inputs

    @property
    def resources(self) -> dict:
        """What its training job asks the scheduler for: image models a GPU (`training.gpu`),
        models that read no image modest CPU resources (`training.without_images`)."""
        if self.images:
            return {key: self.training[key] for key in ("threads", "mem_mb", "runtime", "gpu")}
        return {**self.training["without_images"], "gpu": 0}

    def on_this_cluster(self, training: dict) -> "ModelSpec":
        """The same model asking for this config's resources (a bundle's model applied here)."""
        return replace(self, training={**self.training, **{k: training[k] for k in RESOURCE_KEYS if k in training}})

    @property
    def uses_connectivity(self) -> bool:
        return CONNECTIVITY in self.inputs

    @property
    def raw_modalities(self) -> tuple:
        """Acquired images this model needs (connectivity comes from BOLD, MIND from images)."""
        structural = tuple(m for m in MODALITIES if m in self.images or m in self.mind_images)
        return structural + ((BOLD,) if self.uses_connectivity else ())

    def as_dict(self) -> dict:
        return asdict(self)

    def identity(self) -> dict:
        """Everything that determines the model's results: its rerun trigger and checkpoint key."""
        out = self.as_dict()
        out["training"] = {k: v for k, v in self.training.items() if k not in RESOURCE_KEYS}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        tuples = {key: tuple(data.get(key, ())) for key in ("inputs", "mind_images", "confounds")}
        return cls(**{**data, **tuples})


def model_name(target: str, inputs, resolution: int | None = None, kind: str = "fusion") -> str:
    """Readable, stable folder name: age__t1+flair__64, sex__connectivity."""
    parts = [target, "+".join(inputs)]
    if resolution is not None:
        parts.append(str(resolution))
    if kind != "fusion":
        parts.append(kind)
    return "__".join(parts)


def expand_grid(config: dict) -> dict:
    """Every (target, input set) cell of the config's grid as a ModelSpec, by name, and the
    comparators they are measured against (see `comparators`)."""
    variables = config["phenotypes"]["variables"]
    confounds = confound_variables(config)
    deconfound = config.get("confounds", {}).get("deconfound", False)
    specs = {}
    for number, entry in enumerate(config["grid"], 1):
        where = f"grid entry {number}"
        training = _override(config["training"], entry.get("training", {}), f"{where}: training")
        model = _override(config["model"], entry.get("model", {}), f"{where}: model")
        for target in entry["targets"]:
            if target not in variables:
                raise ConfigError(
                    f"{where}: target {target!r} is not a declared phenotype variable "
                    f"(phenotypes.variables has {', '.join(sorted(variables))})"
                )
            block = variables[target]["block"]
            for input_set in input_sets(entry):
                inputs = tuple(i for i in INPUT_ORDER if i in input_set)
                if block in inputs:
                    raise ConfigError(
                        f"{where}: input set {list(input_set)} for target {target!r} includes "
                        f"its own metadata block {block!r}, which would leak the target"
                    )
                resolution = entry.get("resolution", 64) if any(i in MODALITIES for i in inputs) else None
                spec = ModelSpec(
                    name=model_name(target, inputs, resolution, model["kind"]),
                    target=target,
                    target_type=variables[target]["type"],
                    target_block=block,
                    inputs=inputs,
                    resolution=resolution,
                    kind=model["kind"],
                    training=training,
                    model=model,
                    mind_images=mind_images(config["mind"]["features"]) if MIND in inputs else (),
                    **_deconfounded(target, variables, confounds, deconfound),
                )
                if specs.get(spec.name, spec) != spec:
                    raise ConfigError(f"{where}: model {spec.name} is listed twice with different settings")
                specs[spec.name] = spec
    _check_exclusions(specs, variables)
    for spec in list(specs.values()):  # a comparator listed in the grid serves as it is
        for name, inputs in comparators(spec, variables, confounds).items():
            if name not in specs:
                specs[name] = _comparator(spec, inputs, config, variables, confounds, deconfound)
    return specs


def confound_variables(config: dict) -> list:
    """The nuisance variables (config confounds.variables, and the site), checked."""
    section = config.get("confounds", {})
    names = [*section.get("variables", ()), *([section["site"]] if section.get("site") else [])]
    declared = config["phenotypes"]["variables"]
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise ConfigError(f"confounds: {', '.join(unknown)} not among phenotypes.variables")
    site = section.get("site")
    if site and declared[site]["type"] == "continuous":
        raise ConfigError(f"confounds.site: {site} is continuous; a site is binary or categorical")
    return list(dict.fromkeys(names))


def target_confounds(target: str, declared: dict, confounds) -> tuple:
    """The confounds a model of `target` reads or is residualised on: never the target itself
    nor its declared proxies."""
    excluded = {target, *declared[target].get("exclude", ())}
    return tuple(c for c in confounds if c not in excluded)


def comparator_inputs(inputs) -> dict:
    """The models a cell is measured against, on the same subjects, by the inputs they read:
    `metadata`, for a cell mixing the brain (images, connectivity, MIND) with metadata blocks,
    its blocks alone (what imaging adds to them); `confounds`, for every other cell, the
    target's confounds alone (where the config declares confounds)."""
    blocks = tuple(i for i in inputs if i in BLOCKS)
    out = {}
    if blocks and any(i in IMAGING for i in inputs):
        out["metadata"] = blocks
    if CONFOUNDS not in inputs:
        out["confounds"] = (CONFOUNDS,)
    return out


def comparators(spec: ModelSpec, declared: dict, confounds) -> dict:
    """{name: inputs} of a cell's comparators that the grid trains."""
    found = comparator_inputs(spec.inputs)
    if not target_confounds(spec.target, declared, confounds):
        found.pop("confounds", None)
    return {model_name(spec.target, inputs): inputs for inputs in found.values()}


def _deconfounded(target, declared, confounds, deconfound) -> dict:
    return {"confounds": target_confounds(target, declared, confounds), "deconfound": True} if deconfound else {}


def _comparator(spec, inputs, config, declared, confounds, deconfound) -> ModelSpec:
    """A comparator: the default training and model settings (trained from scratch: it is what
    metadata alone gives), no images (its name says so)."""
    reads_confounds = inputs == (CONFOUNDS,)
    return ModelSpec(
        name=model_name(spec.target, inputs),
        target=spec.target,
        target_type=spec.target_type,
        target_block=spec.target_block,
        inputs=inputs,
        resolution=None,
        kind="fusion",
        training={k: v for k, v in config["training"].items() if k != "init_from"},
        model={**config["model"], "kind": "fusion"},
        **({"confounds": target_confounds(spec.target, declared, confounds)} if reads_confounds
           else _deconfounded(spec.target, declared, confounds, deconfound)),
    )  # fmt: skip


def variables_read(spec: ModelSpec, declared: dict) -> list:
    """The metadata variables a model reads as features: those of its blocks, less its target's
    declared proxies (`exclude`); a confounds-only model, its confounds."""
    if CONFOUNDS in spec.inputs:
        return list(spec.confounds)
    excluded = set(declared[spec.target].get("exclude", ()))
    return [n for n, v in declared.items() if v["block"] in spec.blocks and n not in excluded]


def _check_exclusions(specs: dict, declared: dict) -> None:
    for name, variable in declared.items():
        unknown = sorted(set(variable.get("exclude", ())) - set(declared))
        if unknown:
            raise ConfigError(f"phenotypes.variables.{name}.exclude: {', '.join(unknown)} not among phenotypes.variables")
    for spec in specs.values():
        read = {declared[n]["block"] for n in variables_read(spec, declared)}
        if set(spec.blocks) - read:
            raise ConfigError(
                f"model {spec.name}: every variable of block(s) {', '.join(sorted(set(spec.blocks) - read))} is "
                f"excluded as a proxy of {spec.target} (phenotypes.variables.{spec.target}.exclude): drop the block from its input set"
            )


def input_sets(entry: dict) -> list:
    """A grid entry's input sets: as listed, or every union of one choice from each factor of
    `combine`, where {subsets_of: [...]} stands for every non-empty subset of its inputs."""
    if "input_sets" in entry:
        return [tuple(s) for s in entry["input_sets"]]
    factors = [[chosen for item in factor for chosen in (_subsets(item["subsets_of"]) if isinstance(item, dict) else [item])]
               for factor in entry["combine"]]  # fmt: skip
    unions = (tuple(i for i in INPUT_ORDER if any(i in part for part in parts)) for parts in itertools.product(*factors))
    return [u for u in dict.fromkeys(unions) if u]


def mind_images(feature_names) -> tuple:
    """The preprocessed images MIND features are computed from (`t1`, `t1_gradient`: t1)."""
    return tuple(m for m in MODALITIES if any(name.removesuffix("_gradient") == m for name in feature_names))


def _subsets(inputs) -> list:
    return [list(c) for size in range(1, len(inputs) + 1) for c in itertools.combinations(inputs, size)]


OPTIONAL = {"init_from"}  # settings without a default (absent, they leave every model's identity as it was)


def _override(base: dict, override: dict, where: str) -> dict:
    unknown = sorted(set(override) - set(base) - OPTIONAL)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(base))}")
    merged = {**base, **override}
    for key, value in override.items():  # a nested section (training.without_images): key by key
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            merged[key] = _override(base[key], value, f"{where}.{key}")
    return merged


def target_modalities(specs: dict) -> dict:
    """Per target, every acquired modality that any of its models reads.

    A subject enters a target's split only if all of these pass QC, so every model of the
    target is tested on the same subjects.
    """
    needed = {}
    for spec in specs.values():
        needed.setdefault(spec.target, set()).update(spec.raw_modalities)
    return {target: sorted(mods, key=(*MODALITIES, BOLD).index) for target, mods in needed.items()}


def image_resolutions(specs: dict) -> list:
    return sorted({spec.resolution for spec in specs.values() if spec.resolution is not None})
