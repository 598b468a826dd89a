"""Brain extraction with deepbet (Fisch et al. 2024), a neural network whose weights ship in its
wheel: a learned brain mask of each subject's first structural image (its T1, or else its FLAIR
or diffusion map), the intracranial volume it encloses, and the brain-extracted images.

The mask is made whether or not the workflow strips: QC's brain-extraction check measures the
signal outside it, a test that does not depend on head size as a template's does. With
`skullstrip.method: deepbet` the configured modalities are then multiplied by it (carried to
each image's grid through world coordinates), and every later stage reads those images.
"""

import functools
import hashlib
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from . import MODALITIES
from .io import save_nifti, write_json

SUFFIX = {"t1": "T1w", "flair": "FLAIR", "dwi": "MD"}  # BIDS suffixes of the derivatives
BRAIN_COLUMNS = ["subject", "source", "mask", "status", "reasons", "tiv_ml", "components"]
log = logging.getLogger("legibility.skullstrip")


def mask_path(folder, subject) -> str:
    return f"{folder}/sub-{subject}_desc-brain_mask.nii.gz"


def stripped_path(folder, subject, modality) -> str:
    return f"{folder}/sub-{subject}_desc-brain_{SUFFIX[modality]}.nii.gz"


@functools.cache
def model_checksums() -> dict:
    """sha256 of the model files deepbet loads (its wheel's data/models)."""
    from deepbet.utils import DATA_PATH

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(DATA_PATH, "models").glob("*.pt"))}


def sidecar(settings: dict, **extra) -> dict:
    from importlib.metadata import version

    return {"Method": "deepbet", "Version": version("deepbet"), "Threshold": settings["threshold"], "InputSize": settings["input_size"],
            "ModelSHA256": model_checksums(), **extra}  # fmt: skip


def extractor(threads: int, input_size: int = 256):
    """deepbet's extractor on the GPU where there is one, else on `threads` CPU threads. Its
    network reads the brain's bounding box resampled to `input_size`³ (deepbet's own, 256, by
    default; 192 takes less than half the time, README: Speed)."""
    import deepbet
    import torch
    import torch.nn.functional as F
    from deepbet.utils import keep_largest_connected_component, normalize

    class Extractor(deepbet.BrainExtraction):
        def run_model(self, x, small_shape=(128, 128, 128), shape=(input_size,) * 3, bbox_margin=0.1):
            """deepbet's own (1.0.2), at `input_size`, with its intensity range found by selection
            rather than a sort (a fifth of each head's time) and TorchScript's optimising
            executor off (it profiles a network's first runs, which made each job's first head
            take 3-4 times as long): the same masks to the bit (tests/test_skullstrip.py)."""
            device = next(self.model.parameters()).device
            x = torch.nan_to_num(torch.from_numpy(x).to(device))
            mask = torch.zeros_like(x)
            x_small = F.interpolate(x[None, None], small_shape, mode="nearest-exact")[0, 0]
            low, high = quantile(x_small, 0.005), quantile(x_small, 0.995)
            with torch.no_grad(), torch.jit.optimized_execution(False):
                mask_small = self.bbox_model(normalize(x_small, low, high)[None, None])[0, 1]
                mask_small = torch.from_numpy(keep_largest_connected_component((mask_small > 0.5).float().cpu().numpy())).to(device)
                self.bbox = self.get_bbox_with_margin(mask_small, mask.shape, bbox_margin)
                x = F.interpolate(x[self.bbox][None, None], shape, mode="nearest-exact")[0, 0]
                mask_bbox = self.model(normalize(x, low, high)[None, None])[0, 1]
            mask[self.bbox] = F.interpolate(mask_bbox[None, None], mask[self.bbox].shape, mode="nearest-exact")[0, 0]
            return mask.cpu().numpy()

    torch.set_num_threads(threads)
    return Extractor(no_gpu=not torch.cuda.is_available())


def quantile(x, q: float):
    """torch.quantile's value (linear interpolation between order statistics, to the bit) from
    two k-th value selections instead of a sort of the whole volume."""
    import torch

    flat = x.reshape(-1)
    rank = torch.tensor(q, dtype=x.dtype) * (flat.numel() - 1)
    below = int(rank)
    low = flat.kthvalue(below + 1).values
    high = flat.kthvalue(min(below + 2, flat.numel())).values
    return torch.lerp(low, high, rank - below)


def brain_mask(bet, path, settings: dict):
    """(mask image, its row): deepbet's mask of the image at `path`, with the intracranial volume
    and the checks that the stripping worked (a mask of a brain's size, in one piece); raises
    ValueError where the image cannot be read or the network finds no brain."""
    from .qc import load

    image, data = load(path, ndim=3)
    image = nib.Nifti1Image(data, image.affine, image.header)
    try:
        _, mask, tiv = bet.run(image, threshold=settings["threshold"])
    except (AssertionError, ValueError) as error:  # deepbet's way of saying it found no brain
        raise ValueError(f"deepbet found no brain ({type(error).__name__}: {error})") from None
    inside = np.asanyarray(mask.dataobj).reshape(data.shape) > 0
    components = int(ndimage.label(inside)[1])
    low, high = settings["mask_ml"]
    reasons = []
    if not low <= tiv <= high:
        reasons.append(f"brain mask of {tiv:.0f} ml, outside [{low}, {high}] ml: skull-stripping failed")
    if components != 1:
        reasons.append(f"brain mask in {components} pieces: skull-stripping failed")
    mask = nib.Nifti1Image(inside.astype(np.uint8), image.affine)
    mask.set_qform(image.affine, 1)
    mask.set_sform(image.affine, 1)
    return mask, {"tiv_ml": round(float(tiv), 1), "components": components, "reasons": "; ".join(reasons)}


def run_shard(images: dict, settings: dict, folder):
    """The learned brain mask of every subject of a shard (`images`: subject -> {modality:
    path}), from its first structural image whose mask passes its checks (a T1 that cannot be
    read leaves its FLAIR's), written into `folder` with a JSON sidecar; a table of them
    (status fail, and why, where none could be found)."""
    import pandas as pd

    Path(folder).mkdir(parents=True, exist_ok=True)
    bet, rows = extractor(settings["threads"], settings["input_size"]), []
    for subject in sorted(images):
        row = {"subject": subject, "source": None, "mask": "", "status": "fail", "reasons": "no structural image"}
        failures = []
        for source in (m for m in MODALITIES if m in images[subject]):  # the next where one cannot serve
            try:
                mask, found = brain_mask(bet, images[subject][source], settings)
            except ValueError as error:
                mask, found = None, {"reasons": str(error)}
            if found["reasons"]:
                failures.append(f"{source}: {found['reasons']}")
                if mask is not None and not row["mask"]:  # kept for the montage that shows why
                    row.update(found, source=source, mask=mask_path(folder, subject))
                    save_nifti(row["mask"], mask)
                row.update(source=row["source"] or source, reasons="; ".join(failures))
                continue
            row.update(found, source=source, mask=mask_path(folder, subject), status="pass", reasons="; ".join(failures))
            save_nifti(row["mask"], mask)
            write_json(row["mask"].replace(".nii.gz", ".json"), sidecar(settings, Sources=[str(images[subject][source])],
                                                                         IntracranialVolumeML=row["tiv_ml"]))  # fmt: skip
            break
        log.info("sub-%s: %s", subject, f"brain mask of {row['tiv_ml']} ml from its {row['source']}" if row["status"] == "pass" else row["reasons"])
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=BRAIN_COLUMNS)


def strip_shard(images: dict, brain_table, settings: dict, folder) -> None:
    """Each subject's configured modalities multiplied by its learned brain mask (nearest
    neighbour through world coordinates), written into `folder` with JSON sidecars. A subject
    without a mask gets none: QC fails its images for that reason."""
    from .qc import load_structural

    Path(folder).mkdir(parents=True, exist_ok=True)
    for row in brain_table.itertuples():
        if row.status != "pass":
            continue
        for modality in settings["modalities"]:
            source = images[str(row.subject)].get(modality)
            if source is None:
                continue
            try:
                image, data = load_structural(source, row.mask)
            except ValueError as error:  # QC reads the original and says what is wrong with it
                log.warning("sub-%s %s not stripped: %s", row.subject, modality, error)
                continue
            out = stripped_path(folder, row.subject, modality)
            save_nifti(out, nib.Nifti1Image(data, image.affine, image.header))
            write_json(out.replace(".nii.gz", ".json"), sidecar(settings, Sources=[str(source), row.mask], SkullStripped=True))
