// The parts of a job's page that describe it rather than follow it: its configuration and
// times, downloads, and the artifacts that come with checkpoints (the checkpoints table and the
// plots, requested only where they apply and redrawn as new checkpoints arrive).
"use strict";

import { api, download, getJson, saveBlob } from "./api.js";
import { formatBytes, formatDuration, formatNumber, formatTime, secondsBetween } from "./format.js";

const $ = (selector) => document.querySelector(selector);

/** One sample's shape, from the normalised spec; null when the spec does not say. */
export function inputShape(spec) {
  const data = spec.dataset;
  if (data.kind === "spiral") return [2];
  if (data.kind === "quadratic") return [1];
  if (data.kind === "sum_bins") return [data.features];
  if (data.kind === "digits") return [1, 8, 8];
  if (data.kind === "shapes") return [1, data.size, data.size];
  if (data.kind === "inline") return shapeOf(data.inputs[0]);
  if (data.kind === "uploaded" && data.shape) return data.shape.input_shape;
  return null;
}

/** Whether the job trains on pictures: the built-in ones, or an upload of them. */
function isPictures(spec) {
  const data = spec.dataset;
  return data.kind === "digits" || data.kind === "shapes" || Boolean(data.shape && data.shape.images);
}

function shapeOf(value) {
  return Array.isArray(value) ? [value.length, ...shapeOf(value[0])] : [];
}

export function outputCount(spec) {
  const sized = spec.model.layers.filter((layer) => layer.out_features !== undefined);
  return sized.length ? sized[sized.length - 1].out_features : null;
}

function features(spec) {
  const shape = inputShape(spec);
  return shape === null ? null : shape.reduce((a, b) => a * b, 1);
}

// --- configuration and times ---------------------------------------------------------------

function describe(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return formatNumber(value);
  if (Array.isArray(value)) return `(${value.map(describe).join(", ")})`;
  if (typeof value === "object") {
    return Object.entries(value).map(([key, inner]) => `${key}=${describe(inner)}`).join(", ");
  }
  return String(value);
}

function withoutKey(object, ...keys) {
  return Object.fromEntries(Object.entries(object).filter(([key]) => !keys.includes(key)));
}

function layerText(layer) {
  const rest = withoutKey(layer, "type");
  return Object.keys(rest).length ? `${layer.type}(${describe(rest)})` : layer.type;
}

function datasetText(data) {
  if (data.kind === "inline") return `inline, ${formatNumber(data.inputs.length)} samples`;
  if (data.kind === "uploaded") {
    const shape = data.shape ? `, ${formatNumber(data.shape.samples)} samples` : "";
    return `uploaded ${data.id}${shape}`;
  }
  return `${data.kind} (${describe(withoutKey(data, "kind"))})`;
}

/** A <dl> of [term, value] rows; a value may be text, a node, or a list of them. */
export function facts(list, rows) {
  list.replaceChildren();
  for (const [term, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.append(...[value].flat().map((part) => (part instanceof Node ? part : String(part))));
    list.append(dt, dd);
  }
}

export function renderConfig(job) {
  const spec = job.spec;
  const best = job.best ? bestText(job) : "–";
  facts($("#job-config"), [
    ["Task", `${spec.task}, loss ${spec.loss}`],
    ["Dataset", datasetText(spec.dataset)],
    ["Input shape", inputShape(spec) ? `[${inputShape(spec).join(", ")}]` : "–"],
    ["Validation split", spec.validation_fraction ? formatNumber(spec.validation_fraction) : "none"],
    ["Layers", spec.model.layers.map(layerText).join(" → ")],
    ["Optimizer", `${spec.optimizer.name} (${describe(withoutKey(spec.optimizer, "name"))})`],
    ["Schedule", spec.schedule ? describe(spec.schedule) : "constant learning rate"],
    ["Epochs", formatNumber(spec.epochs)],
    ["Batch size", spec.batch_size ? formatNumber(spec.batch_size) : "the whole training split"],
    ["Seed", spec.seed ?? "–"],
    ["Shuffle, standardize", `${spec.shuffle}, ${spec.standardize}`],
    [
      "Checkpoint every",
      spec.checkpoint_every
        ? `${formatNumber(spec.checkpoint_every)} epochs`
        : `${formatNumber(Math.max(1, Math.floor(spec.epochs / 10)))} epochs, seconds apart (default)`,
    ],
    ["Early stopping", spec.early_stopping ? describe(spec.early_stopping) : "off"],
    ["Best metric", best],
  ]);
}

function bestText(job) {
  const metric = job.spec.best_metric;
  return `${metric} ${formatNumber(job.best[metric])} at epoch ${formatNumber(job.best.epoch)}`;
}

export function renderTimes(job) {
  const ran = secondsBetween(job.started_at, job.finished_at);
  facts($("#job-times"), [
    ["Queued", formatTime(job.created_at)],
    ["Started", formatTime(job.started_at)],
    ["Finished", formatTime(job.finished_at)],
    ["Waited", formatDuration(secondsBetween(job.created_at, job.started_at))],
    ["Ran", job.started_at ? `${formatDuration(ran)}${job.finished_at ? "" : " so far"}` : "–"],
    ["Attempt", formatNumber(job.attempt)],
    ["Stop reason", job.stop_reason || (job.finished_at ? "trained every epoch" : "–")],
  ]);
}

export function bindDownloads(job) {
  const failed = (error) => { $("#download-error").textContent = error.message; };
  $("#download-error").textContent = "";
  $("#download-spec").onclick = () => {
    const blob = new Blob([JSON.stringify(job.spec, null, 2)], { type: "application/json" });
    saveBlob(blob, `${job.id}-spec.json`);
  };
  $("#download-metrics").onclick = () => download(
    `/v1/jobs/${job.id}/metrics`, `${job.id}-metrics.csv`, { headers: { Accept: "text/csv" } },
  ).catch(failed);
  $("#download-onnx").onclick = () => downloadOnnx(job.id).catch(failed);
}

/** The best checkpoint (else the latest) as ONNX, named after the epoch the server says it holds. */
async function downloadOnnx(jobId, checkpoint = null) {
  const query = new URLSearchParams({ format: "onnx" });
  if (checkpoint !== null) query.set("checkpoint", checkpoint);
  const response = await api(`/v1/jobs/${jobId}/export?${query}`);
  const epoch = response.headers.get("X-Checkpoint-Epoch") ?? checkpoint ?? "model";
  saveBlob(await response.blob(), `job-${jobId}-${epoch}.onnx`);
}

// --- checkpoints and plots -----------------------------------------------------------------

/** Which plots apply to the job as it stands, and why the others do not. */
export function plotsFor(job, checkpoints) {
  const spec = job.spec, count = features(spec), saved = checkpoints.length > 0;
  const plots = [], notes = [];
  const want = (name, applies, why) => (applies ? plots.push(name) : notes.push(`${name}: ${why}`));
  want("curves", job.epoch > 0, "after the first epoch");
  want("data", (count === 1 || count === 2) && job.epoch > 0,
    count === 1 || count === 2 ? "after the first epoch" : `needs 1 or 2 input features, not ${count ?? "?"}`);
  if (spec.task === "classification") {
    want("decision_boundary", count === 2 && saved,
      count === 2 ? "after the first checkpoint" : `needs 2 input features, not ${count ?? "?"}`);
    want("confusion", saved, "after the first checkpoint");
    if (isPictures(spec)) plots.push("samples");
  } else {
    const single = count === 1 && outputCount(spec) === 1;
    want("fit", single && saved, single ? "after the first checkpoint" : "needs 1 input feature and 1 output");
  }
  return { plots, notes };
}

export class Artifacts {
  constructor(job, signal, predict) {
    this.jobId = job.id;
    this.status = job.status;
    this.signal = signal;
    this.predict = predict;
    this.seen = null;
    this.drawing = 0;
    this.urls = [];
    signal.addEventListener("abort", () => this.forgetUrls());
  }

  /** Reload the checkpoints, and the plots when a checkpoint, the epoch count or status changed. */
  async refresh(job) {
    this.status = job.status;
    let checkpoints;
    try {
      checkpoints = await getJson(`/v1/jobs/${job.id}/checkpoints`, { signal: this.signal });
    } catch (_) {
      return;
    }
    if (this.signal.aborted) return;
    const last = checkpoints.length ? checkpoints[checkpoints.length - 1] : null;
    const seen = `${job.status}|${checkpoints.length}|${last && last.epoch}`;
    if (seen === this.seen) return;
    this.seen = seen;
    renderCheckpoints(job, checkpoints);
    this.predict.setCheckpoints(checkpoints);
    await this.loadPlots(job, checkpoints);
  }

  async loadPlots(job, checkpoints) {
    const drawing = ++this.drawing;
    const { plots, notes } = plotsFor(job, checkpoints);
    $("#plots-note").textContent = notes.length ? `Not shown: ${notes.join("; ")}.` : "";
    const figures = [];
    for (const name of plots) {
      let blob;
      try {
        blob = await (await api(`/v1/jobs/${job.id}/plots/${name}.png`, { signal: this.signal })).blob();
      } catch (error) {
        if (this.signal.aborted || drawing !== this.drawing) return;
        figures.push(figure(name, null, `not available: ${error.message}`));
        continue;
      }
      if (this.signal.aborted || drawing !== this.drawing) return;
      const url = URL.createObjectURL(blob);
      this.urls.push(url);
      figures.push(figure(name, url, `epoch ${formatNumber(job.epoch)}`, `${job.id}-${name}.png`));
    }
    const old = this.urls.filter((url) => !figures.some((f) => f.dataset.url === url));
    $("#plots").replaceChildren(...figures);
    old.forEach((url) => URL.revokeObjectURL(url));
    this.urls = this.urls.filter((url) => !old.includes(url));
  }

  forgetUrls() { this.urls.forEach((url) => URL.revokeObjectURL(url)); this.urls = []; }
}

function figure(name, url, note, filename) {
  const box = document.createElement("figure");
  box.id = `plot-${name}`;
  const caption = document.createElement("figcaption");
  caption.textContent = `${name} · ${note} `;
  if (url) {
    box.dataset.url = url;
    const image = document.createElement("img");
    image.alt = `${name} plot`;
    image.src = url;
    box.append(image);
    const link = document.createElement("a");
    link.href = url;
    link.download = filename;
    link.textContent = "Download PNG";
    caption.append(link);
  }
  box.append(caption);
  return box;
}

function renderCheckpoints(job, checkpoints) {
  const body = $("#checkpoints-table tbody");
  body.replaceChildren();
  for (const checkpoint of checkpoints) {
    const row = body.insertRow();
    row.insertCell().textContent = formatNumber(checkpoint.epoch);
    row.insertCell().textContent = checkpoint.kind;
    row.insertCell().textContent = formatNumber(checkpoint.metric);
    row.insertCell().textContent = formatBytes(checkpoint.bytes);
    row.insertCell().textContent = formatTime(checkpoint.created_at);
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "safetensors";
    button.setAttribute("aria-label", `Download the epoch ${checkpoint.epoch} checkpoint`);
    button.onclick = () => download(
      `/v1/jobs/${job.id}/checkpoints/${checkpoint.epoch}`,
      `${job.id}-epoch-${checkpoint.epoch}.safetensors`,
    ).catch((error) => { $("#download-error").textContent = error.message; });
    const onnx = document.createElement("button");
    onnx.type = "button";
    onnx.textContent = "onnx";
    onnx.setAttribute("aria-label", `Download the epoch ${checkpoint.epoch} checkpoint as ONNX`);
    onnx.onclick = () => downloadOnnx(job.id, String(checkpoint.epoch))
      .catch((error) => { $("#download-error").textContent = error.message; });
    row.insertCell().append(button, " ", onnx);
  }
}
