"""The cohort's mean T1, FLAIR and MD on the common MNI grid, from the packed preprocessed cubes."""

import logging
from pathlib import Path

import nibabel as nib

from legibility import analysis, jobs, resample
from legibility.io import read_tsv, save_figure, save_nifti

jobs.log_to(snakemake.log[0])
params = snakemake.params
means, counts = analysis.mean_images(snakemake.input.arrays, [read_tsv(t) for t in snakemake.input.tables])
logging.info("mean images: %s", counts)
affine = resample.mni_grid(params.resolution, params.fov_mm)
folder = Path(snakemake.output.images)
folder.mkdir(parents=True, exist_ok=True)
images = {}
for modality, mean in means.items():
    images[modality] = nib.Nifti1Image(mean, affine)
    save_nifti(folder / f"mean_res-{params.resolution}_{resample.SUFFIX[modality]}.nii.gz", images[modality])
save_figure(snakemake.output.figure, analysis.mean_images_figure(images, counts))
