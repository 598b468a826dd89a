"""Samples per second that reach the training loop: the augmentation cache against on the fly.

Both at 64³ with T1, FLAIR and MD as channels, batches of 8, one core (one thread, no loader
workers), over the same training subjects:
- cached: the trainer's own loader reading the float16 cache (epoch e reads copy e mod 4);
- on the fly: each sample read from its three preprocessed NIfTI files with nibabel, stacked,
  and put through the same MONAI transforms, with a DataLoader: what one writes without a cache.
Prints a final JSON line.
    python benchmarks/bench_augment_loader.py [--subjects 16] [--epochs 4]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from legibility import augment, data, demo, resample
from legibility.config import validated
from legibility.io import read_tsv
from legibility.resample import SUFFIX

CHANNELS = ("t1", "flair", "dwi")


def make_cohort(folder: Path, n: int, settings: dict):
    """Demo subjects, preprocessed to 64³ (NIfTI files and packed array) and augmented."""
    prepared = demo._prepared_template()
    table = demo.phenotypes([f"{i:02d}" for i in range(n)], seed=1).replace("n/a", np.nan)
    images = {}
    for record in table.to_dict("records"):
        row = SimpleNamespace(**record, subject=record["participant_id"][4:])
        paths = {m: folder / "raw" / f"sub-{row.subject}_{m}.nii.gz" for m in CHANNELS}
        demo.make_subject(row, 1, paths, set(), prepared=prepared)
        images[row.subject] = {m: str(p) for m, p in paths.items()}
    qc = pd.DataFrame([{"subject": s, "modality": m, "status": "pass"} for s in images for m in CHANNELS])
    preprocess = {"resolutions": [64], "fov_mm": 192.0, "clamp_percentiles": [0.5, 99.5], "normalise": "zscore"}
    resample.run_shard(images, qc, preprocess, {64: folder / "p.npy"}, folder / "p.tsv", folder / "nifti")
    augment.run_shard(read_tsv(folder / "p.tsv"), folder / "p.npy", settings, "zscore", 192.0, 1,
                      folder / "a.npy", folder / "a.tsv")  # fmt: skip
    return sorted(images)


class OnTheFly(torch.utils.data.Dataset):
    def __init__(self, folder, subjects, chain):
        self.folder, self.subjects, self.chain = folder, subjects, chain

    def __len__(self):
        return len(self.subjects)

    def __getitem__(self, index):
        subject = self.subjects[index]
        stack = np.stack([nib.load(self.folder / "nifti" / f"sub-{subject}_res-64_desc-preproc_{SUFFIX[m]}.nii.gz").get_fdata(dtype=np.float32)
                          for m in CHANNELS])  # fmt: skip
        return torch.as_tensor(np.asarray(self.chain(stack)))


def throughput(loader_for_epoch, epochs):
    for _ in loader_for_epoch(0):  # warm-up: page cache, imports
        pass
    samples, started = 0, time.perf_counter()
    for epoch in range(epochs):
        for batch in loader_for_epoch(epoch):
            images = batch[0]["image"] if isinstance(batch, tuple) else batch
            samples += images.shape[0]
    return samples / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = validated({"inputs": {"root": ".", "templates": {"t1": "{subject}"}}, "augment": {"copies": 3},
                          "phenotypes": {"path": ".", "variables": {"a": {"type": "continuous", "block": "constitutional"}}},
                          "grid": [{"targets": ["a"], "input_sets": [["t1"]]}]})["augment"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subjects = make_cohort(folder, args.subjects, settings)
        index = dict(zip(subjects, ((str(folder / "p.npy"), r) for r in range(len(subjects)))))
        augmented = dict(zip(subjects, ((str(folder / "a.npy"), r) for r in range(len(subjects)))))
        reader = data.ImageReader(index, augmented, [0, 1, 2], settings["copies"])
        cached_set = data.SubjectDataset(subjects, np.zeros(len(subjects), np.float32), images=reader, augmented=True)
        order = np.random.default_rng(0)
        batches = lambda: [list(b) for b in np.array_split(order.permutation(len(subjects)), len(subjects) // 8)]  # noqa: E731

        def cached(epoch):
            cached_set.epoch = epoch
            return torch.utils.data.DataLoader(cached_set, batch_sampler=batches(), collate_fn=data.whole_batches)

        chain = augment.transform(settings, "zscore", 64, 192.0)
        chain.set_random_state(0)
        fly = OnTheFly(folder, subjects, chain)

        def on_the_fly(epoch):
            return torch.utils.data.DataLoader(fly, batch_size=8, shuffle=False)

        cached_rate = throughput(cached, args.epochs * 20)  # the cache is fast: more epochs for a stable figure
        fly_rate = throughput(on_the_fly, max(1, args.epochs // 2))
    print(json.dumps({"resolution": 64, "channels": len(CHANNELS), "batch_size": 8, "threads": 1, "subjects": args.subjects,
                      "cached_samples_per_s": round(cached_rate, 1), "on_the_fly_samples_per_s": round(fly_rate, 2),
                      "speedup": round(cached_rate / fly_rate, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
