"""Training one model: AdamW, cosine schedule, early stopping, a checkpoint every epoch.

A killed job resumes from its last checkpoint; on CPU it then ends with exactly the weights of
an uninterrupted run, because every random draw (initialisation, dropout, batch order) comes
from seeds derived from the config seed and the model, and the RNG state is checkpointed.
"""

import copy
import hashlib
import io
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import baseline, data, jobs, metrics
from .io import BackgroundWriter, atomic_path, save_figure, write_json, write_tsv
from .models import FusionNet, SoftLabelLoss, n_parameters
from .seeds import derive_seed, rng
from .splits import SPLITS

log = logging.getLogger("legibility.train")


def n_outputs(spec, levels, fitted) -> int:
    if "bins" in fitted:
        return len(fitted["bins"]["centres"])
    return {"continuous": 1, "binary": 1}.get(spec.target_type) or len(levels[spec.target])


def build_model(spec, datasets, levels, fitted):
    sample, _ = datasets["train"][0]
    return FusionNet(
        n_outputs(spec, levels, fitted),
        spec.model,
        image_channels=len(spec.images),
        resolution=spec.resolution or 64,
        vectors={name: values.numel() for name, values in sample.items() if name != "image"},
    )


def soft_label_loss(fitted):
    """Peng et al.'s KL loss over the fitted bins, in the standardised units the model sees."""
    mean, std = fitted["target"]["mean"], fitted["target"]["std"]
    return SoftLabelLoss((np.array(fitted["bins"]["centres"]) - mean) / std, fitted["bins"]["sigma"] / std)


def loss_function(spec, fitted):
    if "bins" in fitted:
        return soft_label_loss(fitted)
    if spec.target_type == "continuous":
        return nn.MSELoss()
    weights = torch.tensor(fitted["class_weights"], dtype=torch.float32)
    if spec.target_type == "binary":  # balanced: positives weigh n_negative / n_positive
        return nn.BCEWithLogitsLoss(pos_weight=weights[1] / weights[0])
    return nn.CrossEntropyLoss(weight=weights)


def _loss(loss_fn, spec, output, target):
    if isinstance(loss_fn, SoftLabelLoss):
        return loss_fn(output, target)
    if spec.target_type in ("continuous", "binary"):
        return loss_fn(output.squeeze(1), target.float())
    return loss_fn(output, target)


def _loader(dataset, batches, workers):
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=data.whole_batches)


def _to(inputs, device, channels_last):
    out = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
    if channels_last and "image" in out:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last_3d)
    return out


def _autocast(device):
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


def predict(model, dataset, device, batch_size, workers=0):
    """Model outputs (float32 array) for a dataset, in order."""
    model.eval()
    batches = [list(range(i, min(i + batch_size, len(dataset)))) for i in range(0, len(dataset), batch_size)]
    outputs = []
    with torch.no_grad():
        for inputs, _ in _loader(dataset, batches, workers):
            with _autocast(device):
                outputs.append(model(_to(inputs, device, device.type == "cuda")).float().cpu())
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, 1), np.float32)


def spec_hash(spec, seed) -> str:
    """Identifies what a checkpoint belongs to: a changed setting never resumes a stale run."""
    return hashlib.sha256(json.dumps([spec.identity(), seed], sort_keys=True).encode()).hexdigest()[:16]


def fit(spec, datasets, fitted, levels, seed: int, checkpoint_path, device=None):
    """Train with early stopping; returns (model with the best validation weights, history)."""
    settings = spec.training
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(derive_seed(seed, spec.name, "init"))
    model = build_model(spec, datasets, levels, fitted).to(device)
    channels_last = device.type == "cuda" and bool(spec.images)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=settings["epochs"])
    loss_fn = loss_function(spec, fitted).to(device)
    state = {"epoch": 0, "best_loss": float("inf"), "best_epoch": -1, "stale": 0, "history": [], "best_weights": None}

    checkpoint_path = Path(checkpoint_path)
    identity = spec_hash(spec, seed)
    if checkpoint_path.exists():
        saved = torch.load(checkpoint_path, map_location=device, weights_only=True)
        if saved.get("identity") == identity:
            model.load_state_dict(saved["model"])
            optimiser.load_state_dict(saved["optimiser"])
            scheduler.load_state_dict(saved["scheduler"])
            torch.set_rng_state(saved["torch_rng"])
            state = saved["state"]
            log.info("resuming %s from the checkpoint after epoch %d", spec.name, state["epoch"])
        else:
            log.info("ignoring a checkpoint of other settings")

    train_set, n_train = datasets["train"], len(datasets["train"])
    batch = settings["batch_size"]
    # loader workers overlap reading with GPU compute; on CPU they would only take cores from it
    workers = settings["workers"] if device.type == "cuda" else 0
    writer = BackgroundWriter()
    try:
        while state["epoch"] < settings["epochs"] and state["stale"] < settings["patience"]:
            epoch, started = state["epoch"], time.perf_counter()
            train_set.epoch = epoch
            order = rng(seed, spec.name, "order", epoch).permutation(n_train)
            # drop a last batch of one: batch norm cannot train on it
            batches = [order[i : i + batch].tolist() for i in range(0, n_train, batch) if n_train - i > 1 or n_train == 1]
            model.train()
            total = 0.0
            for inputs, target in _loader(train_set, batches, workers):
                inputs, target = _to(inputs, device, channels_last), target.to(device)
                optimiser.zero_grad(set_to_none=True)
                with _autocast(device):
                    loss = _loss(loss_fn, spec, model(inputs), target)
                loss.backward()
                optimiser.step()
                total += loss.item() * len(target)
            scheduler.step()
            val_out = predict(model, datasets["val"], device, batch, workers)
            val_loss = _loss(loss_fn, spec, torch.from_numpy(val_out).to(device), torch.as_tensor(datasets["val"].targets, device=device)).item()
            record = {"epoch": epoch + 1, "train_loss": total / max(1, sum(map(len, batches))), "val_loss": val_loss,
                      "val_metric": validation_metric(spec, val_out, datasets["val"].targets, fitted, levels)}  # fmt: skip
            record["seconds"] = round(time.perf_counter() - started, 3)
            state["history"].append(record)
            if val_loss < state["best_loss"]:
                state.update(best_loss=val_loss, best_epoch=epoch + 1, stale=0, best_weights=copy.deepcopy(model.state_dict()))
            else:
                state["stale"] += 1
            state["epoch"] = epoch + 1
            snapshot = io.BytesIO()  # serialised now (a copy); written to disk while the next epoch trains
            torch.save({"identity": identity, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                        "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(), "state": state}, snapshot)  # fmt: skip
            writer.write(checkpoint_path, snapshot.getbuffer())
            log.info("%s epoch %d/%d train_loss %.4f val_loss %.4f val_%s %.3f (best loss %.4f at %d) %.1fs", spec.name, epoch + 1,
                     settings["epochs"], record["train_loss"], val_loss, metrics.headline(spec.target_type), record["val_metric"],
                     state["best_loss"], state["best_epoch"], record["seconds"])  # fmt: skip
    finally:
        writer.wait()  # the last checkpoint is on disk before anything else happens
    model.load_state_dict(state["best_weights"])
    return model, state


def validation_metric(spec, output, targets, fitted, levels) -> float:
    """The headline metric on the validation split (in the target's units), for the log."""
    if not len(targets):
        return float("nan")
    predicted, _, probabilities = outputs_to_predictions(spec, output, fitted, levels)
    if spec.target_type == "continuous":
        truth = targets * fitted["target"]["std"] + fitted["target"]["mean"]
        return metrics.regression(truth, predicted)["r2"]
    return metrics.classification(targets, probabilities, probabilities.shape[1])["balanced_accuracy"]


def outputs_to_predictions(spec, output, fitted, levels):
    """(predicted values in the original units or level index, scores, class probabilities)."""
    if spec.target_type == "continuous":
        # one output, or one per soft-label bin (the prediction is then the expected bin centre)
        expected = soft_label_loss(fitted).expected if output.shape[1] > 1 else None
        standardised = expected(torch.as_tensor(output, dtype=torch.float32)).numpy() if expected else output[:, 0]
        values = standardised * fitted["target"]["std"] + fitted["target"]["mean"]
        return values, values, None
    if spec.target_type == "binary":
        positive = 1 / (1 + np.exp(-output[:, 0]))
        probabilities = np.stack([1 - positive, positive], axis=1)
        return probabilities.argmax(axis=1), positive, probabilities
    shifted = np.exp(output - output.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    return probabilities.argmax(axis=1), probabilities.max(axis=1), probabilities


def evaluate(spec, outputs, datasets, fitted, phenotypes):
    """Predictions table (val and test) and test metrics, from model outputs per split."""
    levels = phenotypes.levels
    frames, test_metrics = [], {}
    for split in ("val", "test"):
        dataset = datasets[split]
        predicted, score, probabilities = outputs_to_predictions(spec, outputs[split], fitted, levels)
        truth = phenotypes.values.loc[dataset.subjects, spec.target].to_numpy()
        frame = {"subject": dataset.subjects, "split": split}
        if spec.target_type == "continuous":
            frame.update(true=truth, prediction=predicted, score=score)
            split_metrics = metrics.regression(truth, predicted)
        else:
            frame.update(true=phenotypes.label(spec.target, truth), prediction=phenotypes.label(spec.target, predicted), score=score)
            frame.update({f"p_{level}": probabilities[:, i] for i, level in enumerate(levels[spec.target])})
            split_metrics = metrics.classification(truth, probabilities, len(levels[spec.target]))
        frames.append(frame)
        if split == "test":
            test_metrics = split_metrics
    return pd.concat([pd.DataFrame(f) for f in frames], ignore_index=True), test_metrics


def run(spec, split_table, phenotypes, variables, sources, seed, out_dir, threads=1):
    """Everything one model job does; writes its folder under results/models/<model>/."""
    started = time.perf_counter()
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    out_dir = Path(out_dir)
    datasets, fitted = data.build(spec, split_table, phenotypes, variables, sources)
    log.info("%s: %s", spec.name, ", ".join(f"{len(datasets[s])} {s}" for s in SPLITS))
    model, state = fit(spec, datasets, fitted, phenotypes.levels, seed, out_dir / "checkpoint.pt", device)
    outputs = {s: predict(model, datasets[s], device, spec.training["batch_size"]) for s in ("val", "test")}
    predictions, test_metrics = evaluate(spec, outputs, datasets, fitted, phenotypes)
    linear, linear_outputs = baseline.fit(spec, datasets, baseline.features(spec, datasets, sources.get("regions")),
                                          len(phenotypes.levels.get(spec.target, ())))  # fmt: skip
    linear_predictions, linear["test"] = evaluate(spec, linear_outputs, datasets, fitted, phenotypes)
    log.info("%s: test %s, linear baseline %s", spec.name, test_metrics, linear["test"])
    predictions["baseline_prediction"] = linear_predictions["prediction"]
    predictions["baseline_score"] = linear_predictions["score"]

    # plain tensors: load with torch.load(..., weights_only=True). Saved through a file handle, as
    # a file name would end up inside the archive (and ours is a temporary one)
    with atomic_path(out_dir / "model.pt") as tmp, open(tmp, "wb") as handle:
        torch.save(model.state_dict(), handle)
    write_tsv(out_dir / "predictions.tsv", predictions)
    write_json(out_dir / "fitted.json", fitted)
    _figures(spec, state["history"], predictions, out_dir)
    summary = {
        "model": spec.name,
        "target": spec.target,
        "target_type": spec.target_type,
        "inputs": list(spec.inputs),
        "resolution": spec.resolution,
        "kind": spec.kind,
        **{f"n_{s}": len(datasets[s]) for s in SPLITS},
        "n_parameters": n_parameters(model),
        "epochs": state["epoch"],
        "best_epoch": state["best_epoch"],
        "wall_seconds": round(time.perf_counter() - started, 2),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "chance": metrics.chance(spec.target_type, len(phenotypes.levels.get(spec.target, ()))),
        "test": test_metrics,
        "baseline": linear,
        "provenance": {  # what made this result; differs between hosts, not between reruns of one
            **jobs.provenance(), "spec": spec.identity(), "seed": seed, "threads": threads,
            "split_sha256": hashlib.sha256(split_table.to_csv(index=False).encode()).hexdigest(),
        },
    }
    write_json(out_dir / "metrics.json", summary)
    (out_dir / "checkpoint.pt").unlink(missing_ok=True)
    return summary


def _figures(spec, history, predictions, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set(xlabel="epoch", ylabel="loss", title=spec.name)
    ax.legend()
    save_figure(out_dir / "training_curve.png", fig)

    test = predictions[predictions["split"] == "test"]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    if spec.target_type == "continuous":
        ax.scatter(test["true"], test["prediction"], s=12)
        low, high = float(np.nanmin(test[["true", "prediction"]])), float(np.nanmax(test[["true", "prediction"]]))
        ax.plot([low, high], [low, high], color="grey", lw=1)
        ax.set(xlabel=f"true {spec.target}", ylabel="predicted", title=f"{spec.name} (test)")
    else:
        levels = sorted(set(test["true"]) | set(test["prediction"]))
        counts = test.groupby(["true", "prediction"]).size().unstack(fill_value=0).reindex(index=levels, columns=levels, fill_value=0)
        ax.imshow(counts.to_numpy(), cmap="Blues")
        for (i, j), n in np.ndenumerate(counts.to_numpy()):
            ax.text(j, i, str(n), ha="center", va="center")
        ax.set(xticks=range(len(levels)), xticklabels=levels, yticks=range(len(levels)), yticklabels=levels,
               xlabel="predicted", ylabel="true", title=f"{spec.name} (test)")  # fmt: skip
    save_figure(out_dir / "test_predictions.png", fig)
