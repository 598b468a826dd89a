"""Training one model: the cell's linear baseline first, then the network from the linear
model's predictions (models.FusionNet, cross-fitted on the training subjects), with AdamW or SGD, a cosine schedule, at least
`min_epochs`, early stopping on the validation metric, and a checkpoint every epoch. The epoch
kept is the best on the validation metric, epoch 0 being the linear start.

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

from . import baseline, bundle, data, jobs, metrics
from .grid import variables_read
from .io import BackgroundWriter, atomic_path, write_json, write_tsv
from .models import FusionNet, SoftLabelLoss, n_parameters
from .seeds import derive_seed, rng
from .splits import SPLITS

log = logging.getLogger("legibility.train")


def n_outputs(spec, levels, fitted) -> int:
    if "bins" in fitted:
        return len(fitted["bins"]["centres"])
    return {"continuous": 1, "binary": 1}.get(spec.target_type) or len(levels[spec.target])


def offsets(linear_outputs, datasets, fitted):
    """The linear model's outputs the network adds to, per split (cross-fitted on training
    subjects, the full fit's elsewhere), and for soft labels the width of the Gaussian they
    become over the bins: the linear model's cross-fitted error on the training subjects (as
    sure as the linear model, no surer), else None."""
    per_split = {"train": linear_outputs["cross_fitted"], "val": linear_outputs["val"], "test": linear_outputs["test"]}
    if "bins" not in fitted:
        return {s: v.astype(np.float32) for s, v in per_split.items()}, None
    loss = soft_label_loss(fitted)
    spread = max(float(np.sqrt(np.mean((datasets["train"].targets - per_split["train"][:, 0]) ** 2))), loss.sigma)
    return {s: loss.logits_around(v[:, 0], spread).astype(np.float32) for s, v in per_split.items()}, spread


def linear_layer(coefficients, fitted, spread=None):
    """The network's frozen linear layer: the baseline's full fit (weight, bias), mapped onto
    the bins for soft labels."""
    weight, bias = map(np.asarray, coefficients)
    if spread is None:
        return weight, bias
    loss = soft_label_loss(fitted)
    return loss.centres.numpy()[:, None] * weight / spread**2, loss.logits_around(bias, spread)[0]


def build_model(spec, datasets, levels, fitted, linear=None):
    """The network for `spec`, with `linear` = (weight, bias) as its linear path. A saved model:
    build_model(..., linear=(state["linear.weight"], state["linear.bias"])), then load_state_dict."""
    sample, _ = datasets["train"][0]
    return FusionNet(
        n_outputs(spec, levels, fitted),
        spec.model,
        image_channels=len(spec.images),
        resolution=spec.resolution or 64,
        vectors={name: values.numel() for name, values in sample.items() if name not in ("image", "offset", "linear")},
        linear=linear,
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


def predict(model, dataset, device, batch_size=1, workers=0):
    """Model outputs (float32 array) for a dataset, in order. The outputs a job writes are computed
    one subject at a time (the default): a float32 convolution's result for a subject depends on
    which others share its batch, and a bundle must predict each subject as its training job did."""
    model.eval()
    batches = [list(range(i, min(i + batch_size, len(dataset)))) for i in range(0, len(dataset), batch_size)]
    outputs = []
    with torch.no_grad():
        for inputs, _ in _loader(dataset, batches, workers):
            with _autocast(device):
                outputs.append(model(_to(inputs, device, device.type == "cuda")).float().cpu())
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, 1), np.float32)


def spec_hash(spec, seed, fold="holdout") -> str:
    """Identifies what a checkpoint belongs to: a changed setting never resumes a stale run."""
    return hashlib.sha256(json.dumps([spec.identity(), seed, fold], sort_keys=True).encode()).hexdigest()[:16]


def make_optimiser(model, settings):
    trainable = [p for p in model.parameters() if p.requires_grad]
    if settings["optimizer"] == "sgd":
        return torch.optim.SGD(trainable, lr=settings["lr"], momentum=settings["momentum"], weight_decay=settings["weight_decay"])
    return torch.optim.AdamW(trainable, lr=settings["lr"], weight_decay=settings["weight_decay"])


def fit(spec, datasets, fitted, levels, seed: int, checkpoint_path, device=None, linear=None, fold="holdout"):
    """Train with early stopping; returns (model with the best validation weights, state with
    the history of every epoch)."""
    settings = spec.training
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(derive_seed(seed, spec.name, fold, "init"))
    model = build_model(spec, datasets, levels, fitted, linear)
    started_from = bundle.initialise(model, settings["init_from"], log) if settings.get("init_from") else None
    model = model.to(device)
    channels_last = device.type == "cuda" and bool(spec.images)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimiser = make_optimiser(model, settings)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=settings["epochs"])
    loss_fn = loss_function(spec, fitted).to(device)
    # the kept epoch is the best on the validation metric (the loss breaks ties)
    state = {"epoch": 0, "best": (-float("inf"), -float("inf")), "best_epoch": -1, "stale": 0, "history": [], "best_weights": None,
             "started_from": started_from}  # fmt: skip

    checkpoint_path = Path(checkpoint_path)
    identity = spec_hash(spec, seed, fold)
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

    def validate(epoch, train_loss, started):
        """Validation loss and metric after `epoch`; the best epoch's weights are kept."""
        val_out = predict(model, datasets["val"], device, batch, workers)
        val_loss = _loss(loss_fn, spec, torch.from_numpy(val_out).to(device), torch.as_tensor(datasets["val"].targets, device=device)).item()
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                  "val_metric": validation_metric(spec, val_out, datasets["val"].targets, fitted, levels),
                  "seconds": round(time.perf_counter() - started, 3)}  # fmt: skip
        state["history"].append(record)
        losses = subject_losses(loss_fn, spec, torch.from_numpy(val_out).to(device), torch.as_tensor(datasets["val"].targets, device=device))
        score = (record["val_metric"] if np.isfinite(record["val_metric"]) else -float("inf"), -val_loss)
        if score > tuple(state["best"]):
            weights = copy.deepcopy(model.state_dict())
            state.update(best=score, best_epoch=epoch, stale=0, best_weights=weights, best_losses=losses)
            if epoch == 0:
                state.update(start_weights=weights, start_losses=losses)
        else:
            state["stale"] += 1
        return record

    if not state["history"]:  # epoch 0: the linear start, before any training
        validate(0, float("nan"), time.perf_counter())
    writer = BackgroundWriter()
    try:
        while state["epoch"] < settings["epochs"] and (state["epoch"] < settings["min_epochs"] or state["stale"] < settings["patience"]):
            epoch, started = state["epoch"], time.perf_counter()
            train_set.epoch = epoch
            order = rng(seed, spec.name, fold, "order", epoch).permutation(n_train)
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
            record = validate(epoch + 1, total / max(1, sum(map(len, batches))), started)
            state["epoch"] = epoch + 1
            snapshot = io.BytesIO()  # serialised now (a copy); written to disk while the next epoch trains
            torch.save({"identity": identity, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                        "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(), "state": state}, snapshot)  # fmt: skip
            writer.write(checkpoint_path, snapshot.getbuffer())
            log.info("%s epoch %d/%d train_loss %.4f val_loss %.4f val_%s %.3f (best %.3f at %d) %.1fs", spec.name, epoch + 1,
                     settings["epochs"], record["train_loss"], record["val_loss"], metrics.headline(spec.target_type),
                     record["val_metric"], state["best"][0], state["best_epoch"], record["seconds"])  # fmt: skip
    finally:
        writer.wait()  # the last checkpoint is on disk before anything else happens
    # the one-standard-error rule (Breiman et al. 1984): the network replaces its linear start
    # only where its validation loss is lower by more than one standard error of the subjects'
    # differences; a small validation set would otherwise pick noise over the linear model
    gain = np.asarray(state["start_losses"]) - np.asarray(state["best_losses"])
    if state["best_epoch"] > 0 and len(gain) > 1 and gain.mean() <= gain.std(ddof=1) / np.sqrt(len(gain)):
        log.info("%s: epoch %d's validation gain over the linear start is within one standard error: the linear start is kept",
                 spec.name, state["best_epoch"])  # fmt: skip
        state.update(best_epoch=0, best_weights=state["start_weights"])
    model.load_state_dict(state["best_weights"])
    return model, state


def subject_losses(loss_fn, spec, output, target) -> list:
    """Each subject's training loss (unreduced), for comparing two epochs subject by subject."""
    if isinstance(loss_fn, SoftLabelLoss):
        losses = nn.functional.kl_div(torch.log_softmax(output.float(), dim=1), loss_fn.soft_labels(target.float()), reduction="none").sum(1)
    elif spec.target_type == "continuous":
        losses = (output[:, 0].float() - target.float()) ** 2
    elif spec.target_type == "binary":
        losses = nn.functional.binary_cross_entropy_with_logits(output[:, 0].float(), target.float(), pos_weight=loss_fn.pos_weight, reduction="none")
    else:
        losses = nn.functional.cross_entropy(output.float(), target, weight=loss_fn.weight, reduction="none")
    return losses.cpu().tolist()


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
    """Predictions table (val and test) and metrics per split, from model outputs per split."""
    levels = phenotypes.levels
    frames, split_metrics = [], {}
    for split in ("val", "test"):
        dataset = datasets[split]
        predicted, score, probabilities = outputs_to_predictions(spec, outputs[split], fitted, levels)
        truth = phenotypes.values.loc[dataset.subjects, spec.target].to_numpy()
        frame = {"subject": dataset.subjects, "split": split}
        if spec.target_type == "continuous":
            frame.update(true=truth, prediction=predicted, score=score)
            split_metrics[split] = metrics.regression(truth, predicted)
        else:
            frame.update(true=phenotypes.label(spec.target, truth), prediction=phenotypes.label(spec.target, predicted), score=score)
            frame.update({f"p_{level}": probabilities[:, i] for i, level in enumerate(levels[spec.target])})
            split_metrics[split] = metrics.classification(truth, probabilities, len(levels[spec.target]))
        frames.append(frame)
    return pd.concat([pd.DataFrame(f) for f in frames], ignore_index=True), split_metrics


def degenerate(spec, predictions, fitted) -> str:
    """Why a model's predictions say nothing, or "": the same value (or class) for every
    validation or test subject."""
    reasons = []
    for split in ("val", "test"):
        predicted = predictions.loc[predictions["split"] == split, "prediction"]
        if len(predicted) < 2:
            continue
        if spec.target_type == "continuous" and np.ptp(predicted.to_numpy(float)) <= 1e-6 * fitted["target"]["std"]:
            reasons.append(f"predicts {predicted.iloc[0]:.4g} for every {split} subject")
        elif spec.target_type != "continuous" and predicted.nunique() == 1:
            reasons.append(f"predicts {predicted.iloc[0]!r} for every {split} subject")
    return "; ".join(reasons)


def deterministic(mode: bool) -> None:
    """torch.use_deterministic_algorithms(mode) without its import of torch's compiler (to set
    torch.compile's flag, which no model here uses): 1.7 s of every training job's start."""
    torch._C._set_deterministic_algorithms(mode)


def run(spec, split_table, phenotypes, variables, sources, seed, out_dir, threads=1, fold="holdout"):
    """Everything one model job does on one fold: writes results/models/<model>/<fold>/."""
    started = time.perf_counter()
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        deterministic(True)
    out_dir = Path(out_dir)
    phenotypes = data.deconfounded(spec, split_table, phenotypes, variables)  # the target it learns
    datasets, fitted = data.build(spec, split_table, phenotypes, variables, sources, where=f"{spec.name}, {fold}")
    log.info("%s, %s: %s", spec.name, fold, ", ".join(f"{len(datasets[s])} {s}" for s in SPLITS))
    features = baseline.features(spec, datasets, sources.get("regions"), fitted)
    linear, linear_outputs, coefficients = baseline.fit(spec, datasets, features, len(phenotypes.levels.get(spec.target, ())))
    fitted["baseline"] = linear.pop("estimator")  # the full fit, at full precision: a bundle predicts with it
    start, spread = offsets(linear_outputs, datasets, fitted)
    if spread is not None:
        fitted["spread"] = spread  # of the soft labels around the linear start
    for split, dataset in datasets.items():  # the network adds to the linear model's outputs
        dataset.vectors["offset"] = start[split]
    layer = linear_layer(coefficients, fitted, spread)
    model, state = fit(spec, datasets, fitted, phenotypes.levels, seed, out_dir / "checkpoint.pt", device, layer, fold)
    outputs = {s: predict(model, datasets[s], device) for s in ("val", "test")}
    predictions, deep_metrics = evaluate(spec, outputs, datasets, fitted, phenotypes)
    linear_predictions, linear_metrics = evaluate(spec, linear_outputs, datasets, fitted, phenotypes)
    linear.update(val=linear_metrics["val"], test=linear_metrics["test"])
    log.info("%s, %s: test %s, linear baseline %s", spec.name, fold, deep_metrics["test"], linear["test"])
    for column in [c for c in linear_predictions.columns if c in ("prediction", "score") or c.startswith("p_")]:
        predictions[f"baseline_{column}"] = linear_predictions[column]
    predictions.insert(1, "fold", fold)

    # plain tensors: load with torch.load(..., weights_only=True). Saved through a file handle, as
    # a file name would end up inside the archive (and ours is a temporary one)
    with atomic_path(out_dir / "model.pt") as tmp, open(tmp, "wb") as handle:
        torch.save(model.state_dict(), handle)
    write_tsv(out_dir / "predictions.tsv", predictions)
    summary = {
        "model": spec.name,
        "fold": fold,
        "target": spec.target,
        "target_type": spec.target_type,
        "inputs": list(spec.inputs),
        "variables_read": variables_read(spec, variables),  # its blocks' variables, less the target's proxies
        "confounds": list(spec.confounds),  # read (a confounds-only model) or residualised on (deconfound)
        "deconfound": spec.deconfound,
        "resolution": spec.resolution,
        "kind": spec.kind,
        **{f"n_{s}": len(datasets[s]) for s in SPLITS},
        "n_parameters": n_parameters(model),
        "epochs": state["epoch"],
        "best_epoch": state["best_epoch"],
        "started_from": state.get("started_from"),  # training.init_from: the bundle, and what of it was loaded
        "wall_seconds": round(time.perf_counter() - started, 2),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "degenerate": degenerate(spec, predictions, fitted),
        "val": deep_metrics["val"],
        "test": deep_metrics["test"],
        "baseline": linear,
        "history": state["history"],
        "fitted": fitted,  # target and every input's scaling, the baseline's fit: from the training subjects
        "provenance": {  # what made this result; differs between hosts, not between reruns of one
            **jobs.provenance(), "spec": spec.identity(), "seed": seed, "threads": threads,
            "split_sha256": hashlib.sha256(split_table.to_csv(index=False).encode()).hexdigest(),
        },
    }
    write_json(out_dir / "metrics.json", summary)
    (out_dir / "checkpoint.pt").unlink(missing_ok=True)
    return summary

