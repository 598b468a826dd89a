"""Confound regression (`confounds.deconfound`): a model's continuous target and its features
residualised on the nuisance variables (age, sex, head size, site) by least squares fitted on
the training subjects only, then applied to every split: cross-validated confound regression,
which leaves no confound information to the test subjects' scores (Snoek et al. 2019)."""

import numpy as np


class Residualiser:
    """scikit-learn style: `fit` on the training subjects' confounds (subjects x confounds) and
    values (subjects x features), `transform` any subjects': values less [1, confounds] @ coef_."""

    def fit(self, confounds, values):
        self.coef_ = np.linalg.lstsq(design(confounds), np.asarray(values, np.float64), rcond=None)[0]
        return self

    def transform(self, confounds, values):
        return (np.asarray(values, np.float64) - design(confounds) @ self.coef_).astype(np.asarray(values).dtype)


def design(confounds):
    """The confounds with an intercept column."""
    confounds = np.asarray(confounds, np.float64).reshape(len(confounds), -1)
    return np.hstack([np.ones((len(confounds), 1)), confounds])


def residualised(train_confounds, per_split: dict, confounds: dict) -> dict:
    """{split: values less what the training split's fit predicts from its confounds}."""
    fitted = Residualiser().fit(train_confounds, per_split["train"])
    return {split: fitted.transform(confounds[split], values) for split, values in per_split.items()}


class VoxelResidualiser:
    """Images residualised voxel by voxel: coef_ (1 + confounds, *image shape) from the
    training subjects' original images, accumulated one subject at a time (the normal
    equations), so no more than one image is held; `transform` subtracts a subject's
    prediction from any of its images (augmented copies too: the maps are in template space,
    which an augmentation's few millimetres leave nearly aligned)."""

    def fit(self, confounds: dict, read):
        """`confounds`: training subject -> its confound row; `read(subject)`: its image."""
        rows = {s: design(np.atleast_2d(c))[0] for s, c in confounds.items()}
        gram = sum(np.outer(r, r) for r in rows.values())
        moments = None
        for subject, row in rows.items():
            image = np.asarray(read(subject), np.float64)
            moments = np.multiply.outer(row, image) if moments is None else moments + np.multiply.outer(row, image)
        shape = moments.shape
        self.coef_ = np.linalg.lstsq(gram, moments.reshape(len(gram), -1), rcond=None)[0].reshape(shape).astype(np.float32)
        return self

    def prediction(self, confounds_row):
        return np.tensordot(design(np.atleast_2d(confounds_row))[0].astype(np.float32), self.coef_, axes=1)
