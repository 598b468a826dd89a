"""results/dashboard.html: the grid to explore in a browser, one self-contained file (its data,
style and script inline: no server, no network). Each target's row shows its verdict, best
input set and interval; hovering it shows its best model and what that model reads; clicking it
lists every model of the target with every metric, each linked to its folder, weights and
figures (paths relative to results/, where the file lies)."""

import html
import json
import math

import pandas as pd

from .grid import INPUT_ORDER

FIRST = ["model", "cell", "metric", "score", "ci_low", "ci_high", "q_value", "legible", "baseline_score", "kept", "degenerate"]  # then the rest

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; white-space: nowrap; }
tr.target { cursor: pointer; } tr.target:hover { background: #eef4ff; }
td.legible { color: #075e00; font-weight: bold; } td.not-legible { color: #8a0000; }
#tooltip { position: absolute; display: none; background: #fffbe6; border: 1px solid #c9b458; padding: 6px 9px;
           max-width: 40em; box-shadow: 2px 2px 6px #0003; pointer-events: none; }
#details { overflow-x: auto; } .note { color: #666; }
"""

SCRIPT = """
const DATA = JSON.parse(document.getElementById("data").textContent);
const tooltip = document.getElementById("tooltip");
const fmt = v => (v === null ? "n/a" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v));
function link(href, text) { const a = document.createElement("a"); a.href = href; a.textContent = text; return a; }
function cell(row, tag, content, column, value) {
  const td = document.createElement(tag);
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  if (column !== undefined) { td.dataset.column = column; td.dataset.value = value === null ? "" : String(value); }
  row.appendChild(td); return td;
}
const body = document.querySelector("#targets tbody");
for (const t of DATA.targets) {
  const tr = document.createElement("tr");
  tr.className = "target"; tr.dataset.target = t.target;
  cell(tr, "td", t.target, "target", t.target);
  cell(tr, "td", t.verdict, "verdict", t.verdict).className = t.verdict === "legible" ? "legible" : "not-legible";
  cell(tr, "td", t.best_input_set, "best_input_set", t.best_input_set);
  cell(tr, "td", `${t.metric} ${fmt(t.score)} [${fmt(t.ci_low)}, ${fmt(t.ci_high)}]`, "score", t.score);
  cell(tr, "td", t.best_model ? link(t.best_model_folder, "model folder") : "n/a", "best_model", t.best_model);
  tr.addEventListener("mouseenter", event => {
    tooltip.textContent = `${t.target}: best model ${t.best_model} (${t.chosen}); reads ${t.best_inputs.join(", ")}` +
      (t.best_variables.length ? `; variables ${t.best_variables.join(", ")}` : "");
    tooltip.style.left = `${event.pageX + 12}px`; tooltip.style.top = `${event.pageY + 12}px`; tooltip.style.display = "block";
  });
  tr.addEventListener("mouseleave", () => { tooltip.style.display = "none"; });
  tr.addEventListener("click", () => show(t.target));
  body.appendChild(tr);
}
function show(target) {
  const details = document.getElementById("details");
  details.replaceChildren();
  const heading = document.createElement("h2"); heading.textContent = `Models of ${target}`; details.appendChild(heading);
  const table = document.createElement("table"); table.id = "models"; details.appendChild(table);
  const head = document.createElement("tr"); table.appendChild(head);
  for (const name of ["links", ...DATA.columns]) cell(head, "th", name);
  for (const m of DATA.models.filter(m => m.target === target)) {
    const tr = document.createElement("tr"); tr.dataset.model = m.model; table.appendChild(tr);
    const links = document.createElement("span");
    for (const [href, text] of [[`models/${m.model}/`, "folder"], [m.weights, "weights"], [`test_predictions/${m.model}.png`, "predictions"],
                                [`training_curves/${m.model}.png`, "training curve"]]) { links.appendChild(link(href, text)); links.append(" "); }
    cell(tr, "td", links);
    for (const name of DATA.columns) cell(tr, "td", fmt(m[name]), name, m[name]);
  }
}
"""


def _clean(value):
    """JSON-safe: NaN and missing values as null, numpy scalars as Python ones."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value


def records(frame: pd.DataFrame) -> list:
    return [{k: _clean(v) for k, v in row.items()} for row in frame.astype(object).to_dict("records")]


def build(performance: pd.DataFrame, legibility: pd.DataFrame, variables_read: dict, weights: dict, figures: dict) -> str:
    """The page, from the performance and legibility tables; `variables_read`: model -> the
    metadata variables it read; `weights`: model -> its (first fold's) weights, relative to
    results/; `figures`: title -> path of each analysis figure, relative to results/."""
    models = performance.set_index(["target", "cell"])["model"]
    targets = []
    for row in records(legibility):
        best = models.get((row["target"], row["best_input_set"]))
        inputs = [i for i in INPUT_ORDER if best is not None and performance.set_index("model").loc[best, i] == "yes"]
        targets.append({**row, "best_model": best, "best_model_folder": f"models/{best}/" if best else None, "best_inputs": inputs,
                        "best_variables": list(variables_read.get(best, []))})  # fmt: skip
    columns = [c for c in FIRST if c in performance.columns] + [c for c in performance.columns if c not in FIRST]
    data = {"targets": targets, "columns": columns,
            "models": [{**m, "weights": weights.get(m["model"], f"models/{m['model']}/")} for m in records(performance)]}  # fmt: skip
    payload = json.dumps(data, allow_nan=False).replace("<", "\\u003c")  # never closes its script element
    analyses = "".join(f'<li><a href="{html.escape(path)}">{html.escape(title)}</a></li>' for title, path in figures.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>legibility: the grid</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<style>{STYLE}</style></head><body>
<h1>Which targets can be predicted, and from what</h1>
<p class="note">Hover a target for its best model and what it reads; click it for every model of the target with every metric.
Links open files beside this page, under results/.</p>
<table id="targets"><thead><tr><th>target</th><th>verdict</th><th>best input set</th><th>score [interval]</th><th>best model</th></tr></thead>
<tbody></tbody></table>
<div id="tooltip"></div>
<section id="details"></section>
<h2>Analyses</h2><ul id="analyses">{analyses}</ul>
<script type="application/json" id="data">{payload}</script>
<script>{SCRIPT}</script>
</body></html>
"""
