"""What one model reads: its subjects per split, their inputs and targets, and what is fitted.

Everything fitted (target standardisation, class weights, feature scaling and imputation) is
fitted on the training split alone and applied to all splits.
"""

import warnings

import numpy as np
import pandas as pd
import torch

from . import MODALITIES
from .confounds import VoxelResidualiser, residualised
from .grid import variables_read
from .inputs import Phenotypes
from .io import read_tsv
from .shards import open_packed
from .splits import SPLITS


class ImageReader:
    """Reads a subject's image channels from the packed shard arrays.

    Training subjects have `copies` augmented versions besides the original; copy 0 is the
    original, so epoch e reads copy e mod (copies + 1).
    """

    def __init__(self, originals: dict, augmented: dict, channels, copies: int):
        self.originals, self.augmented = originals, augmented
        self.channels, self.copies = list(channels), copies
        # adjacent channels are a slice: a view of the memory map, not a copy
        contiguous = self.channels == list(range(self.channels[0], self.channels[-1] + 1))
        self._select = slice(self.channels[0], self.channels[-1] + 1) if contiguous else self.channels
        self._open = {}
        self.residualiser, self.confound_rows = None, {}  # deconfound: voxel maps, subject -> its confounds

    def block(self, subject: str, copy: int = 0):
        """The stored (float16) channels of one subject, as a view where possible."""
        if copy and subject in self.augmented:
            path, row = self.augmented[subject]
            return self._array(path)[row, copy - 1, self._select]
        path, row = self.originals[subject]
        return self._array(path)[row, self._select]

    def read(self, subject: str, copy: int = 0):
        return np.asarray(self.block(subject, copy), dtype=np.float32)

    def _array(self, path):
        if path not in self._open:  # opened lazily: each loader worker maps its own
            self._open[path] = open_packed(path)
        return self._open[path]


class SubjectDataset(torch.utils.data.Dataset):
    """One split of one model. Batches are assembled whole (`__getitems__`): images go from the
    float16 memory maps into one float32 batch tensor, converted by torch, and in the main
    process that tensor is reused from batch to batch (fresh memory costs page faults)."""

    def __init__(self, subjects, targets, images=None, vectors=None, augmented=False, confounds=None):
        self.subjects, self.targets = list(subjects), targets
        self.confounds = confounds  # deconfound: the subjects' confounds (scaled on the training split)
        self.images, self.vectors = images, vectors or {}  # vectors: {input: subjects x features}
        self.augmented, self.epoch = augmented, 0
        self._buffer = None

    def __len__(self):
        return len(self.subjects)

    def __getitem__(self, index):
        inputs, target = self.__getitems__([index])
        return {k: v[0] for k, v in inputs.items()}, target[0]

    def __getitems__(self, indices):
        inputs = {}
        if self.images is not None:
            copy = self.epoch % (self.images.copies + 1) if self.augmented else 0
            blocks = [self.images.block(self.subjects[i], copy) for i in indices]
            batch = self._batch_tensor((len(indices), *blocks[0].shape))
            with warnings.catch_warnings():  # memory maps are read-only; torch only reads them
                warnings.simplefilter("ignore", UserWarning)
                for row, block in zip(batch, blocks):
                    row.copy_(torch.from_numpy(block))
            if self.images.residualiser is not None:  # deconfound: less what the confounds predict
                for row, i in zip(batch, indices):
                    row.sub_(torch.from_numpy(self.images.residualiser.prediction(self.images.confound_rows[self.subjects[i]])))
            inputs["image"] = batch
        for name, values in self.vectors.items():
            inputs[name] = torch.from_numpy(values[indices])
        return inputs, torch.as_tensor(self.targets[indices])

    def _batch_tensor(self, shape):
        if torch.utils.data.get_worker_info() is not None:  # a worker's batch travels on: fresh memory
            return torch.empty(shape)
        if self._buffer is None or self._buffer.shape[0] < shape[0] or self._buffer.shape[1:] != shape[1:]:
            self._buffer = torch.empty(shape)
        return self._buffer[: shape[0]]


def whole_batches(batch):
    """collate_fn for datasets that assemble their own batches."""
    return batch


def _index(table, status_column=None):
    """subject -> (packed array path, row) for the usable rows of a stage's index table."""
    if status_column:
        table = table[table[status_column] == "ok"]
    return {s: (str(a), int(r)) for s, a, r in zip(table["subject"].astype(str), table["array"], table["row"])}


def standardise(train, *others):
    """Scale by training mean and sd (NaN-aware); missing values become the training mean (0)."""
    with np.errstate(all="ignore"):
        mean = np.nanmean(train, axis=0)
        std = np.nanstd(train, axis=0)
    mean = np.nan_to_num(mean)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return [np.nan_to_num((x - mean) / std).astype(np.float32) for x in (train, *others)], mean, std


def soft_label_bins(train_values, width: float, sigma: float) -> dict:
    """Bin centres spanning the training values with two sigmas to spare, in target units."""
    low = np.floor((np.min(train_values) - 2 * sigma) / width) * width
    n_bins = int(np.ceil((np.max(train_values) + 2 * sigma - low) / width))
    return {"centres": (low + width * (np.arange(n_bins) + 0.5)).round(6).tolist(), "sigma": sigma}


def metadata_columns(phenotypes, variables: dict):
    """Feature matrix (subjects x features) of `variables`: numbers as they are, categorical
    variables one-hot (all zero when missing)."""
    columns = {}
    for name, spec in variables.items():
        values = phenotypes.values[name]
        if spec["type"] == "categorical":
            for code, level in enumerate(phenotypes.levels[name]):
                columns[f"{name}={level}"] = (values == code).astype(float).where(values.notna(), 0.0)
        else:
            columns[name] = values
    return pd.DataFrame(columns, index=phenotypes.values.index)


def split_subjects(split_table) -> dict:
    return {s: split_table.loc[split_table["split"] == s, "subject"].astype(str).tolist() for s in SPLITS}


def confound_matrices(spec, phenotypes, variables, subjects: dict):
    """{split: (subjects x columns)} of the model's confounds, scaled on the training split
    (missing values take its mean); None where it has none."""
    if not spec.confounds:
        return None
    table = metadata_columns(phenotypes, {n: variables[n] for n in spec.confounds})
    return dict(zip(SPLITS, standardise(*[table.loc[subjects[split]].to_numpy(dtype=float) for split in SPLITS])[0]))


def deconfounded(spec, split_table, phenotypes, variables):
    """`phenotypes` with the model's continuous target residualised on its confounds (`deconfound`;
    fitted on the training subjects, applied to every subject of the split), so it is what the
    model learns and is scored on; as it is otherwise (a class cannot be residualised: only the
    features of a binary or categorical target are)."""
    if not (spec.deconfound and spec.confounds and spec.target_type == "continuous"):
        return phenotypes
    subjects = split_subjects(split_table)
    confounds = confound_matrices(spec, phenotypes, variables, subjects)
    values = phenotypes.values.copy()
    target = {s: values.loc[subjects[s], spec.target].to_numpy(float) for s in SPLITS}
    for split, residual in residualised(confounds["train"], target, confounds).items():
        values.loc[subjects[split], spec.target] = residual
    return Phenotypes(values, phenotypes.levels)


def build(spec, split_table, phenotypes, variables: dict, sources: dict, where=None):
    """Datasets per split, and the `fitted` parameters (all from the training split). Stops,
    naming the model and fold (`where`), where a split is empty or a class of the target has no
    training subject (a model could not learn it, and class weights would be infinite)."""
    where = where or spec.name
    subjects = split_subjects(split_table)
    empty = [s for s in SPLITS if not subjects[s]]
    if empty:
        raise ValueError(f"{where}: target {spec.target!r} has no {' and no '.join(empty)} subjects (too few eligible subjects for the split)")
    fitted = {}
    confounds = confound_matrices(spec, phenotypes, variables, subjects) if spec.deconfound else None
    raw_y = {s: phenotypes.values.loc[subjects[s], spec.target].to_numpy() for s in SPLITS}
    if spec.target_type != "continuous":
        present = set(np.concatenate(list(raw_y.values())).astype(int))
        absent = sorted(present - set(raw_y["train"].astype(int)))
        if absent:
            names = ", ".join(repr(phenotypes.levels[spec.target][c]) for c in absent)
            raise ValueError(f"{where}: target {spec.target!r} has no training subject of class {names} (too few of that class for the split)")
    if spec.target_type == "continuous":
        mean, std = float(raw_y["train"].mean()), float(raw_y["train"].std() or 1.0)
        fitted["target"] = {"mean": mean, "std": std}
        if spec.model["soft_labels"]:
            fitted["bins"] = soft_label_bins(raw_y["train"], spec.model["bin_width"], spec.model["bin_sigma"])
        targets = {s: ((y - mean) / std).astype(np.float32) for s, y in raw_y.items()}
    else:
        n_classes = len(phenotypes.levels[spec.target])
        counts = np.bincount(raw_y["train"].astype(int), minlength=n_classes)
        weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
        fitted["class_weights"] = weights.round(6).tolist()
        dtype = np.float32 if spec.target_type == "binary" else np.int64
        targets = {s: y.astype(dtype) for s, y in raw_y.items()}

    images = None
    if spec.images:
        preprocessed = read_tsv(sources["preprocess"])
        originals, augmented = _index(preprocessed), _index(read_tsv(sources["augment"]))
        status = preprocessed.set_index(["subject", "modality"])["status"]
        missing = [f"sub-{s} {m}" for split in SPLITS for s in subjects[split] for m in spec.images if status.get((s, m)) != "ok"]
        if missing:
            raise ValueError(f"{spec.name}: no preprocessed image for {', '.join(missing[:10])}")
        channels = [MODALITIES.index(m) for m in spec.images]
        images = ImageReader(originals, augmented, channels, sources["copies"])
        if confounds:
            images.confound_rows = {s: c for split in SPLITS for s, c in zip(subjects[split], confounds[split])}
            train_rows = {s: images.confound_rows[s] for s in subjects["train"]}
            images.residualiser = VoxelResidualiser().fit(train_rows, images.read)

    features = {}
    for name in spec.vectors:  # connectivity, MIND: a vector per subject, scaled on the training split
        index = _index(read_tsv(sources[name]), status_column="status")
        missing = [s for split in SPLITS for s in subjects[split] if s not in index]
        if missing:
            raise ValueError(f"{spec.name}: no {name} for subjects {missing[:10]}")
        rows = {s: np.asarray(open_packed(index[s][0])[index[s][1]], dtype=np.float64) for split in SPLITS for s in subjects[split]}
        scaled, mean, std = standardise(*[np.stack([rows[s] for s in subjects[split]]) for split in SPLITS])
        features[name] = dict(zip(SPLITS, scaled))
        fitted[name] = {"mean": mean.tolist(), "std": std.tolist()}  # full precision: applied again, it gives the same inputs
    if spec.reads_metadata:
        table = metadata_columns(phenotypes, {n: variables[n] for n in variables_read(spec, variables)})
        scaled, mean, std = standardise(*[table.loc[subjects[split]].to_numpy(dtype=float) for split in SPLITS])
        features["metadata"] = dict(zip(SPLITS, scaled))
        fitted["metadata"] = {"columns": list(table.columns), "mean": mean.tolist(), "std": std.tolist()}
    if confounds:  # every feature less what the training subjects' confounds predict of it
        features = {name: residualised(confounds["train"], per_split, confounds) for name, per_split in features.items()}

    datasets = {
        split: SubjectDataset(
            subjects[split],
            targets[split],
            images=images,
            vectors={name: per_split[split] for name, per_split in features.items()},
            augmented=split == "train",
            confounds=confounds[split] if confounds else None,
        )
        for split in SPLITS
    }
    return datasets, fitted
