"""Training throughput at 64³: the model's own compute, our trainer, and a reference loop.

Same model (the schema's default fusion CNN over T1, FLAIR and MD), same batch size, same
threads (the schema's default, capped at the cores there are), same training subjects:
- compute only: forward, backward and AdamW step on batches already in memory, plus the
  validation forward passes the trainer makes every epoch (on batches in memory too): the
  least time one epoch's work can take (`train_steps_only`, without validation, is reported
  too);
- ours: an epoch of `train.fit` end to end (reads the float16 augmentation cache, steps,
  validates, writes the checkpoint, logs);
- reference: the reference study's style, where every step loads each subject's `.nii.gz`
  files and applies the MONAI augmentation on the fly, through a DataLoader with the
  configured number of loader workers (the schema's default, 2), then the same forward,
  backward and step. Ours reads the cache in the training process on CPU (workers would take
  cores from the computation) and uses the configured workers on a GPU.
Rates are training samples per second of one epoch's wall time, the best of a few epochs
taken in turn. Where CUDA is present the same figures are measured on the GPU too (report
only). Prints a final JSON line.
    python benchmarks/bench_training.py [--train 48] [--val 16] [--repeats 3]
"""

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_augment_loader import CHANNELS, OnTheFly, make_cohort

from legibility import augment, data, grid, train
from legibility.config import validated

BATCH = 8
FITTED = {"target": {"mean": 0.0, "std": 1.0}}  # targets are already standardised


def settings():
    config = validated({
        "inputs": {"root": ".", "templates": {m: "{subject}" for m in CHANNELS}},
        "phenotypes": {"path": ".", "variables": {"age": {"type": "continuous", "block": "constitutional"}}},
        "grid": [{"targets": ["age"], "input_sets": [list(CHANNELS)]}],
        "augment": {"copies": 3},
        "training": {"batch_size": BATCH},
    })  # fmt: skip
    (spec,) = grid.expand_grid(config).values()
    return config, spec


def step(model, optimiser, loss_fn, inputs, target):
    optimiser.zero_grad(set_to_none=True)
    with train._autocast(target.device):
        loss = loss_fn(model(inputs).squeeze(1), target)
    loss.backward()
    optimiser.step()


def compute_only(spec, datasets, device):
    """One epoch's training steps and validation passes on batches already on the device."""
    model, optimiser, loss_fn, target = _model(spec, datasets, device)
    channels_last = device.type == "cuda"
    batches = {split: [{"image": datasets[split].__getitems__(list(range(i, i + BATCH)))[0]["image"].clone()}
                       for i in range(0, len(datasets[split]), BATCH)] for split in ("train", "val")}  # fmt: skip
    batches = {split: [train._to(b, device, channels_last) for b in bs] for split, bs in batches.items()}

    def epoch():
        model.train()
        for inputs in batches["train"]:
            step(model, optimiser, loss_fn, inputs, target)
        model.eval()
        with torch.no_grad(), train._autocast(device):
            for inputs in batches["val"]:
                model(inputs)

    return epoch


def train_steps_only(spec, datasets, device):
    """Forward, backward and step on one batch in memory, as many steps as an epoch has."""
    model, optimiser, loss_fn, target = _model(spec, datasets, device)
    inputs = train._to({"image": datasets["train"].__getitems__(list(range(BATCH)))[0]["image"].clone()}, device, device.type == "cuda")

    def epoch():
        model.train()
        for _ in range(len(datasets["train"]) // BATCH):
            step(model, optimiser, loss_fn, inputs, target)

    return epoch


def ours(spec, datasets, device, folder):
    """`train.fit` for two epochs; the second one's wall time, from the end of the first epoch
    (checkpoint written, progress logged) to the end of the second: loading from the cache,
    steps, validation, checkpoint and log. Building the model is once per job, not per epoch."""
    two_epochs = grid.ModelSpec.from_dict({**spec.as_dict(), "training": {**spec.training, "epochs": 2}})
    ends = []
    handler = logging.Handler()
    handler.emit = lambda record: ends.append(time.perf_counter()) if "epoch" in record.getMessage() else None
    logging.getLogger("legibility.train").addHandler(handler)
    logging.getLogger("legibility.train").setLevel(logging.INFO)

    def epoch():
        ends.clear()
        (folder / "checkpoint.pt").unlink(missing_ok=True)
        train.fit(two_epochs, datasets, FITTED, {}, 0, folder / "checkpoint.pt", device)
        return ends[1] - ends[0]

    return epoch


def reference(spec, datasets, device, folder, chain):
    """Each step loads the subjects' NIfTI files and augments them with MONAI, in loader workers."""
    model, optimiser, loss_fn, target = _model(spec, datasets, device)
    loader = torch.utils.data.DataLoader(OnTheFly(folder, datasets["train"].subjects, chain), batch_size=BATCH,
                                         shuffle=True, num_workers=spec.training["workers"], drop_last=True)  # fmt: skip

    def epoch():
        model.train()
        for images in loader:
            step(model, optimiser, loss_fn, train._to({"image": images}, device, device.type == "cuda"), target)

    return epoch


def _model(spec, datasets, device):
    torch.manual_seed(0)
    model = train.build_model(spec, datasets, {}, FITTED).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3), torch.nn.MSELoss(), torch.zeros(BATCH, device=device)


def measure(spec, datasets, device, folder, chain, repeats):
    """Seconds per epoch of each loop, the best of `repeats` rounds taken in turn (after a
    warm-up round: kernel selection, page cache), as training samples per second."""
    loops = {"compute_only": compute_only(spec, datasets, device), "train_steps_only": train_steps_only(spec, datasets, device),
             "ours": ours(spec, datasets, device, folder), "reference": reference(spec, datasets, device, folder, chain)}  # fmt: skip
    seconds = {name: [] for name in loops}
    for _ in range(repeats + 1):
        for name, epoch in loops.items():
            started = time.perf_counter()
            timed = epoch()  # ours times its own second epoch
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds[name].append(timed or time.perf_counter() - started)
    rate = {name: len(datasets["train"]) / min(times[1:]) for name, times in seconds.items()}
    return {
        **{f"{name}_samples_per_s": round(r, 3) for name, r in rate.items()},
        "efficiency": round(rate["ours"] / rate["compute_only"], 3),
        "efficiency_vs_train_steps_only": round(rate["ours"] / rate["train_steps_only"], 3),
        "speedup": round(rate["ours"] / rate["reference"], 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=int, default=48, help="training subjects (a multiple of the batch size)")
    parser.add_argument("--val", type=int, default=16, help="validation subjects (the default split's 1 to 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs of each loop (the best counts)")
    args = parser.parse_args()
    config, spec = settings()
    threads = min(spec.training["threads"], os.cpu_count())
    torch.use_deterministic_algorithms(True)  # as train.run does on CPU
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subjects = make_cohort(folder, args.train + args.val, config["augment"])
        torch.set_num_threads(threads)  # after the cohort: the augmentation jobs run single-threaded
        rows = {s: (str(folder / "p.npy"), r) for r, s in enumerate(subjects)}
        reader = data.ImageReader(rows, {s: (str(folder / "a.npy"), r) for r, s in enumerate(subjects)}, [0, 1, 2], 3)
        names = {"train": subjects[: args.train], "val": subjects[args.train :], "test": []}
        targets = np.random.default_rng(0).normal(size=len(subjects)).astype(np.float32)
        targets = {"train": targets[: args.train], "val": targets[args.train :], "test": targets[:0]}
        datasets = {split: data.SubjectDataset(names[split], targets[split], images=reader,
                                               augmented=split == "train") for split in names}  # fmt: skip
        chain = augment.transform(config["augment"], "zscore", 64, 192.0)
        figures = {"resolution": 64, "channels": len(CHANNELS), "batch_size": BATCH, "threads": threads,
                   "reference_workers": spec.training["workers"], "train": args.train, "val": args.val, "repeats": args.repeats,
                   "n_parameters": sum(p.numel() for p in train.build_model(spec, datasets, {}, FITTED).parameters())}  # fmt: skip
        figures.update(measure(spec, datasets, torch.device("cpu"), folder, chain, args.repeats))
        if torch.cuda.is_available():
            torch.use_deterministic_algorithms(False)
            gpu = measure(spec, datasets, torch.device("cuda"), folder, chain, args.repeats)
            figures.update({f"gpu_{k}": v for k, v in gpu.items()}, gpu=torch.cuda.get_device_name())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
