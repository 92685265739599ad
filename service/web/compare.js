// Compare runs: the chosen metric of several jobs overlaid, each job's best and last value, and
// the spec fields that differ between them. Reached from the jobs list (tick, then "Compare
// selected") as #/compare/ID,ID,...; any other view can link there the same way.
"use strict";

import { getJson } from "./api.js";
import { bindChartControls, Chart, COLOURS, resizeOnWindowChange } from "./charts.js";
import { formatNumber } from "./format.js";

const $ = (selector) => document.querySelector(selector);
const LOWER_IS_BETTER = new Set(["loss", "val_loss"]);

export async function showCompare(ids, signal) {
  document.title = `Compare ${ids.length} runs · PyTorch training service`;
  for (const id of ["#compare-chart", "#compare-metrics thead", "#compare-metrics tbody", "#compare-diff thead", "#compare-diff tbody"]) {
    $(id).replaceChildren();
  }
  $("#compare-error").textContent = "";
  let runs;
  try {
    runs = await Promise.all(ids.map(async (id) => ({
      job: await getJson(`/v1/jobs/${encodeURIComponent(id)}`, { signal }),
      epochs: (await getJson(`/v1/jobs/${encodeURIComponent(id)}/metrics`, { signal })).epochs,
    })));
  } catch (error) {
    if (!signal.aborted) $("#compare-error").textContent = error.message;
    return;
  }
  if (signal.aborted) return;
  let chart = null;
  const draw = () => {
    if (chart) chart.destroy();
    const metric = $("#compare-metric").value;
    chart = overlay(runs, metric, controls);
    renderMetrics(runs, metric);
  };
  const controls = bindChartControls({
    log: $("#compare-log"), smoothing: $("#compare-smoothing"), smoothingValue: $("#compare-smoothing-value"),
  }, () => (chart ? [chart] : []));
  $("#compare-metric").onchange = draw;
  resizeOnWindowChange(() => (chart ? [chart] : []));
  signal.addEventListener("abort", () => chart && chart.destroy());
  draw();
  renderDiff(runs);
}

function label(job) { return job.name ? `${job.name} (${job.id.slice(-6)})` : job.id; }

function overlay(runs, metric, controls) {
  // One x column for all: the union of every run's epochs, a null where a run has none.
  const x = [...new Set(runs.flatMap(({ epochs }) => epochs.map((e) => e.epoch)))].sort((a, b) => a - b);
  const index = new Map(x.map((epoch, i) => [epoch, i]));
  const ys = runs.map(({ epochs }) => {
    const column = new Array(x.length).fill(null);
    for (const e of epochs) column[index.get(e.epoch)] = e[metric] ?? null;
    return column;
  });
  const chart = new Chart($("#compare-chart"), {
    title: metric,
    series: runs.map(({ job }, i) => ({ label: label(job), colour: COLOURS[i % COLOURS.length] })),
    log: controls.log(),
    smoothing: controls.smoothing(),
  });
  chart.setColumns(x, ys);
  return chart;
}

function best(epochs, metric) {
  let found = null;
  for (const e of epochs) {
    const value = e[metric];
    if (value === null || value === undefined) continue;
    const better = LOWER_IS_BETTER.has(metric) ? value < found?.value : value > found?.value;
    if (found === null || better) found = { value, epoch: e.epoch };
  }
  return found;
}

function renderMetrics(runs, metric) {
  header($("#compare-metrics thead"), ["Job", "Status", "Epochs", `Best ${metric}`, "at epoch", `Last ${metric}`]);
  const body = $("#compare-metrics tbody");
  body.replaceChildren();
  for (const { job, epochs } of runs) {
    const top = best(epochs, metric);
    const last = epochs.length ? epochs[epochs.length - 1][metric] : null;
    row(body, [link(job), job.status, formatNumber(job.epoch), formatNumber(top && top.value),
      top ? formatNumber(top.epoch) : "–", formatNumber(last)]);
  }
}

/** Every leaf of the spec as "dotted.path" -> value (list items by index, as sweeps name them). */
export function flatten(value, prefix = "", into = {}) {
  if (value !== null && typeof value === "object" && !(Array.isArray(value) && value.every((v) => typeof v !== "object"))) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, into);
  } else {
    into[prefix] = value;
  }
  return into;
}

function renderDiff(runs) {
  const flat = runs.map(({ job }) => flatten({ ...job.spec, name: undefined }));
  const paths = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  const differing = paths.filter((path) => new Set(flat.map((f) => JSON.stringify(f[path] ?? null))).size > 1);
  header($("#compare-diff thead"), ["Spec field", ...runs.map(({ job }) => label(job))]);
  const body = $("#compare-diff tbody");
  if (differing.length === 0) { row(body, ["(their specs are the same)"]); return; }
  for (const path of differing) {
    row(body, [path, ...flat.map((f) => cellText(f[path]))]);
  }
}

function cellText(value) {
  if (value === undefined) return "–";
  if (typeof value === "number") return formatNumber(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

function link(job) {
  const a = document.createElement("a");
  a.href = `#/jobs/${job.id}`;
  a.textContent = label(job);
  return a;
}

function header(thead, names) {
  thead.replaceChildren();
  const tr = thead.insertRow();
  for (const name of names) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    tr.append(th);
  }
}

function row(body, cells) {
  const tr = body.insertRow();
  for (const value of cells) {
    const td = tr.insertCell();
    if (value instanceof Node) td.append(value); else td.textContent = value;
  }
}
