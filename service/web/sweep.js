// One sweep's page: its status, counts, best trial, epochs saved and failed trials' errors;
// every trial's curve of the sweep's metric overlaid and followed live (each trial's new
// epochs polled with `since=`, appended); the leaderboard, sortable by any column, each trial
// linking to its job page; Cancel while it runs. Reset before the sweep is fetched, so an
// unknown id (or another key's) leaves nothing of the previous sweep and no Cancel bound.
"use strict";

import { FINAL, getJson, sleep } from "./api.js";
import { bindChartControls, Chart, COLOURS, resizeOnWindowChange } from "./charts.js";
import { formatNumber, formatTime } from "./format.js";
import { facts } from "./job_details.js";
import { finished } from "./sweeps.js";

const $ = (selector) => document.querySelector(selector);
const POLL_MS = 2000;
const sort = { column: "rank", descending: false };

export async function showSweep(sweepId, signal) {
  resetSweepView(sweepId);
  let sweep;
  try {
    sweep = await getJson(`/v1/sweeps/${encodeURIComponent(sweepId)}`, { signal });
  } catch (error) {
    if (signal.aborted) return;
    text($("#sweep-name"), error.status === 404 ? "Sweep not found" : "Sweep unavailable");
    text($("#sweep-error"), error.message);
    document.title = `${$("#sweep-name").textContent} · PyTorch training service`;
    return;
  }
  if (signal.aborted) return;
  document.title = `${sweep.name} · PyTorch training service`;
  $("#sweep-body").hidden = false;
  bindCancel(sweep.id, signal);
  const curves = new Curves(signal);
  signal.addEventListener("abort", () => curves.destroy());
  for (;;) {
    let board = null;
    try {
      board = await getJson(`/v1/sweeps/${sweep.id}/trials`, { signal });
      if (signal.aborted) return;
      renderSweep(sweep, board);
      renderBoard(board);
      await curves.follow(board);
    } catch (error) {
      if (signal.aborted) return;
      text($("#sweep-error"), error.message);
    }
    const done = sweep.status !== "running" && board && board.trials.every((t) => FINAL.has(t.status));
    if (done || signal.aborted) return;
    await sleep(POLL_MS, signal);
    if (signal.aborted) return;
    try {
      sweep = await getJson(`/v1/sweeps/${sweep.id}`, { signal });
    } catch (error) {
      if (!signal.aborted) text($("#sweep-error"), error.message);
    }
    if (signal.aborted) return;
  }
}

function resetSweepView(sweepId) {
  document.title = `Sweep ${sweepId} · PyTorch training service`;
  const cancel = $("#cancel-sweep");
  cancel.hidden = true;
  cancel.disabled = true;
  cancel.onclick = null;
  $("#sweep-body").hidden = true;
  for (const id of ["#sweep-name", "#sweep-status", "#sweep-id", "#sweep-counts", "#sweep-error"]) text($(id), "");
  $("#sweep-status").className = "status";
  sort.column = "rank";
  sort.descending = false;
  for (const id of ["#sweep-facts", "#sweep-failed", "#sweep-chart", "#sweep-trials thead", "#sweep-trials tbody"]) {
    $(id).replaceChildren();
  }
}

function renderSweep(sweep, board) {
  text($("#sweep-name"), sweep.name || "(unnamed)");
  text($("#sweep-status"), sweep.status).className = `status ${sweep.status}`;
  text($("#sweep-id"), `${sweep.id} · ${sweep.method} · ${formatNumber(sweep.parallel)} at a time`);
  const counts = Object.entries(sweep.counts).filter(([, count]) => count > 0)
    .map(([status, count]) => `${formatNumber(count)} ${status}`);
  text($("#sweep-counts"), `${formatNumber(finished(sweep))} of ${formatNumber(sweep.max_trials)} trials ended`
    + (counts.length ? ` (${counts.join(", ")})` : ""));
  const cancel = $("#cancel-sweep");
  cancel.hidden = sweep.status !== "running";
  cancel.disabled = sweep.status !== "running";
  const best = sweep.best;
  const bestText = best
    ? [`#${best.trial}: ${formatNumber(best.value)} at epoch ${formatNumber(best.best_epoch)} (${paramsText(best.params)}) `, jobLink(best.job_id, "open")]
    : "–";
  facts($("#sweep-facts"), [
    ["Metric", board ? `${board.metric} (${board.goal})` : "–"],
    ["Best trial", bestText],
    ["Trials created", `${formatNumber(sweep.trials_created)} of ${formatNumber(sweep.max_trials)}`],
    ["Epochs saved by pruning", formatNumber(sweep.epochs_saved)],
    ["Created", formatTime(sweep.created_at)],
    ["Finished", formatTime(sweep.finished_at)],
    ...(sweep.error ? [["Error", sweep.error]] : []),
  ]);
  const failed = $("#sweep-failed");
  failed.replaceChildren();
  if (sweep.failed_trials.length) {
    const heading = document.createElement("h2");
    heading.textContent = "Failed trials";
    const items = document.createElement("ul");
    for (const trial of sweep.failed_trials) {
      const item = document.createElement("li");
      item.append(jobLink(trial.job_id, `#${trial.trial}`), ` (${paramsText(trial.params)}): ${trial.error || "no error recorded"}`);
      items.append(item);
    }
    failed.append(heading, items);
  }
}

/** Cancel, bound to this sweep only, after the user confirms. */
function bindCancel(sweepId, signal) {
  const cancel = $("#cancel-sweep");
  cancel.onclick = async () => {
    if (signal.aborted || !window.confirm(`Cancel sweep ${sweepId}? No more trials start; running ones stop at their next epoch.`)) return;
    cancel.disabled = true;
    try {
      renderSweep(await getJson(`/v1/sweeps/${sweepId}/cancel`, { method: "POST", signal }), null);
    } catch (error) {
      if (!signal.aborted) { text($("#sweep-error"), error.message); cancel.disabled = false; }
    }
  };
}

// --- the leaderboard -----------------------------------------------------------------------

/** The params whose values differ between trials (all of them when there is one trial). */
export function differingParams(trials) {
  const keys = [...new Set(trials.flatMap((t) => Object.keys(t.params)))];
  if (trials.length < 2) return keys;
  return keys.filter((key) => new Set(trials.map((t) => JSON.stringify(t.params[key] ?? null))).size > 1);
}

function paramsText(params, keys = Object.keys(params)) {
  return keys.map((key) => `${key}=${valueText(params[key])}`).join(", ");
}

function valueText(value) {
  if (value === undefined || value === null) return "–";
  if (typeof value === "number") return formatNumber(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

function renderBoard(board) {
  const keys = [...new Set(board.trials.flatMap((t) => Object.keys(t.params)))];
  const columns = [
    { name: "rank", title: "Rank", value: (t) => t.rank, text: (t) => valueText(t.rank) },
    { name: "trial", title: "Trial", value: (t) => t.trial, cell: (t) => jobLink(t.job_id, `#${t.trial}`) },
    { name: "status", title: "Status", value: (t) => t.status, text: (t) => t.status },
    ...keys.map((key) => ({
      name: `params.${key}`, title: key, value: (t) => sortable(t.params[key]), text: (t) => valueText(t.params[key]),
    })),
    { name: "value", title: board.metric, value: (t) => t.value, text: (t) => valueText(t.value) },
    { name: "best_epoch", title: "at epoch", value: (t) => t.best_epoch, text: (t) => valueText(t.best_epoch) },
    { name: "epoch", title: "Epochs", value: (t) => t.epoch, text: (t) => `${formatNumber(t.epoch)} of ${formatNumber(t.epochs)}` },
  ];
  if (!columns.some((c) => c.name === sort.column)) { sort.column = "rank"; sort.descending = false; }
  const focused = focusedControl();
  const head = $("#sweep-trials thead");
  head.replaceChildren();
  const headRow = head.insertRow();
  for (const column of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.dataset.column = column.name;
    const sorted = column.name === sort.column;
    th.setAttribute("aria-sort", sorted ? (sort.descending ? "descending" : "ascending") : "none");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    button.textContent = column.title + (sorted ? (sort.descending ? " ▼" : " ▲") : "");
    button.onclick = () => {
      sort.descending = sorted ? !sort.descending : false;
      sort.column = column.name;
      renderBoard(board);
    };
    th.append(button);
    headRow.append(th);
  }
  const order = columns.find((c) => c.name === sort.column).value;
  const rows = [...board.trials].sort((a, b) => compare(order(a), order(b), sort.descending) || a.trial - b.trial);
  const body = $("#sweep-trials tbody");
  body.replaceChildren();
  for (const trial of rows) {
    const row = body.insertRow();
    row.dataset.job = trial.job_id;
    for (const column of columns) {
      const cell = row.insertCell();
      if (column.cell) cell.append(column.cell(trial)); else cell.textContent = column.text(trial);
    }
  }
  if (focused) { const again = $(focused); if (again) again.focus(); }
  const table = $("#sweep-trials");
  table.dataset.draws = Number(table.dataset.draws || 0) + 1;
}

/** The table is redrawn every poll: the header or trial link that had focus gets it back. */
function focusedControl() {
  const active = document.activeElement;
  if (!active || !$("#sweep-trials").contains(active)) return null;
  const header = active.closest("th");
  if (header) return `#sweep-trials th[data-column="${header.dataset.column}"] button`;
  const row = active.closest("tr");
  return row ? `#sweep-trials tr[data-job="${row.dataset.job}"] a` : null;
}

function sortable(value) {
  return value === undefined || value === null || typeof value === "number" || typeof value === "string"
    ? value ?? null : JSON.stringify(value);
}

/** Missing values last whichever way; numbers by value, the rest as text. */
function compare(a, b, descending) {
  if (a === null || a === undefined) return b === null || b === undefined ? 0 : 1;
  if (b === null || b === undefined) return -1;
  const order = typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b));
  return descending ? -order : order;
}

function jobLink(jobId, label) {
  const link = document.createElement("a");
  link.href = `#/jobs/${jobId}`;
  link.textContent = label;
  return link;
}

// --- the curves ----------------------------------------------------------------------------

/** Every trial's curve of the metric in one chart; each trial's epochs fetched once, appended. */
class Curves {
  constructor(signal) {
    this.signal = signal;
    this.trials = new Map();  // job id -> {trial, status, epochs: Map epoch -> value}
    this.chart = null;
    this.shown = "";  // the series the chart was built with
    this.controls = bindChartControls({
      log: $("#sweep-log"), smoothing: $("#sweep-smoothing"), smoothingValue: $("#sweep-smoothing-value"),
    }, () => (this.chart ? [this.chart] : []));
    resizeOnWindowChange(() => (this.chart ? [this.chart] : []));
  }

  async follow(board) {
    await Promise.all(board.trials.map(async (trial) => {
      let known = this.trials.get(trial.job_id);
      if (!known) {
        known = { epochs: new Map(), last: 0, done: false };
        this.trials.set(trial.job_id, known);
      }
      known.trial = trial;
      if (known.done || trial.status === "queued") return;
      const { epochs } = await getJson(`/v1/jobs/${trial.job_id}/metrics?since=${known.last}`, { signal: this.signal });
      for (const epoch of epochs) known.epochs.set(epoch.epoch, epoch[board.metric] ?? null);
      if (epochs.length) known.last = epochs[epochs.length - 1].epoch;
      known.done = FINAL.has(trial.status);
    }));
    if (!this.signal.aborted) this.draw(board);
  }

  draw(board) {
    const runs = [...this.trials.values()].sort((a, b) => a.trial.trial - b.trial.trial);
    const differing = differingParams(runs.map((run) => run.trial));
    const labels = runs.map((run) => `#${run.trial.trial} ${paramsText(run.trial.params, differing)}`);
    const x = [...new Set(runs.flatMap((run) => [...run.epochs.keys()]))].sort((a, b) => a - b);
    const ys = runs.map((run) => x.map((epoch) => run.epochs.get(epoch) ?? null));
    const shown = JSON.stringify([board.metric, labels]);
    if (shown !== this.shown) {
      if (this.chart) this.chart.destroy();
      const container = $("#sweep-chart");
      container.setAttribute("role", "img");
      container.setAttribute("aria-label", `${board.metric} of every trial by epoch`);
      container.dataset.series = runs.length;
      this.chart = new Chart(container, {
        title: board.metric,
        series: labels.map((label, i) => ({ label, colour: COLOURS[i % COLOURS.length] })),
        log: this.controls.log(),
        smoothing: this.controls.smoothing(),
      });
      this.shown = shown;
    }
    this.chart.setColumns(x, ys);
  }

  destroy() { if (this.chart) this.chart.destroy(); this.chart = null; }
}

function text(element, value) { element.textContent = value; return element; }
