// One job's page: its header, live curves, configuration and times, plots, checkpoints and the
// predict form. Everything is reset before the job is fetched, so an unknown id (or another
// key's) leaves nothing of the previous job on screen, and no button bound to it.
"use strict";

import { FINAL, followEvents, getJson } from "./api.js";
import { bindChartControls, Chart, COLOURS, resizeOnWindowChange } from "./charts.js";
import { formatNumber } from "./format.js";
import { renderConfig, renderTimes, bindDownloads, Artifacts } from "./job_details.js";
import { setUpPredict } from "./predict.js";

const $ = (selector) => document.querySelector(selector);
const CHECKPOINT_POLL_MS = 5000;
const COLUMNS = ["loss", "val_loss", "accuracy", "val_accuracy", "lr"];

export async function showJob(jobId, signal) {
  resetJobView(jobId);
  let job;
  try {
    job = await getJson(`/v1/jobs/${encodeURIComponent(jobId)}`, { signal });
  } catch (error) {
    if (signal.aborted) return;
    text($("#job-name"), error.status === 404 ? "Job not found" : "Job unavailable");
    text($("#job-error"), error.message);
    document.title = `${$("#job-name").textContent} · PyTorch training service`;
    return;
  }
  if (signal.aborted) return;
  $("#job-body").hidden = false;
  document.title = `${job.name || job.id} · PyTorch training service`;
  renderHeader(job);
  renderSweepLink(job);
  renderConfig(job);
  renderTimes(job);
  bindDownloads(job);
  bindCancel(job.id, signal);
  const predict = setUpPredict(job);
  const artifacts = new Artifacts(job, signal, predict);
  artifacts.refresh(job);

  const columns = { epoch: [], ...Object.fromEntries(COLUMNS.map((name) => [name, []])) };
  const charts = makeCharts(job, columns);
  signal.addEventListener("abort", () => charts.forEach((chart) => chart.destroy()));
  const append = (epochs) => {
    for (const epoch of epochs) {
      columns.epoch.push(epoch.epoch);
      for (const name of COLUMNS) columns[name].push(epoch[name] ?? null);
    }
    if (epochs.length) {
      charts.forEach((chart) => chart.scheduleDraw());
      showLatest(job, epochs[epochs.length - 1]);
    }
  };
  try {
    append((await getJson(`/v1/jobs/${job.id}/metrics`, { signal })).epochs);
  } catch (error) {
    if (signal.aborted) return;
    text($("#job-error"), error.message);
  }
  if (!FINAL.has(job.status)) pollCheckpoints(job, artifacts, signal);

  const after = columns.epoch.length ? columns.epoch[columns.epoch.length - 1] : 0;
  await followEvents(`/v1/jobs/${job.id}/events`, {
    signal,
    after,
    onEvents: async (events) => {
      const epochs = [];
      let status = null;
      for (const { name, data } of events) {
        if (name === "epoch" && (columns.epoch.length === 0 || data.epoch > columns.epoch.at(-1))) epochs.push(data);
        else if (name === "status") status = data;
      }
      append(epochs);
      if (status && status.status !== job.status) {
        // A new state brings fields the event does not carry: device, times, best metric.
        job = await getJson(`/v1/jobs/${job.id}`, { signal });
        if (signal.aborted) return;
        renderHeader(job);
        renderConfig(job);
        renderTimes(job);
        artifacts.refresh(job);
      } else if (status) {
        job = { ...job, ...status };
        renderHeader(job);
      }
    },
  });
}

function resetJobView(jobId) {
  document.title = `Job ${jobId} · PyTorch training service`;
  const cancel = $("#cancel-job");
  cancel.hidden = true;
  cancel.disabled = true;
  cancel.onclick = null;
  $("#job-body").hidden = true;
  for (const id of ["#job-name", "#job-status", "#job-id", "#job-latest", "#job-error", "#prediction"]) {
    text($(id), "");
  }
  $("#job-status").className = "status";
  text($("#epoch"), "0");
  text($("#epochs"), "?");
  $("#job-progress").value = 0;
  $("#job-stop-reason").hidden = true;
  $("#job-sweep").hidden = true;
  for (const id of ["#job-config", "#job-times", "#plots", "#job-charts", "#checkpoints-table tbody"]) {
    $(id).replaceChildren();
  }
  text($("#plots-note"), "");
}

function renderHeader(job) {
  text($("#job-name"), job.name || "(unnamed)");
  text($("#job-status"), job.status).className = `status ${job.status}`;
  const device = job.device || (job.status === "queued" ? "waiting for a worker" : "no device");
  text($("#job-id"), `${job.id} · ${formatNumber(job.parameters)} parameters · ${device}`);
  text($("#epoch"), formatNumber(job.epoch));
  text($("#epochs"), formatNumber(job.epochs));
  $("#job-progress").value = job.epochs ? job.epoch / job.epochs : 0;
  const cancel = $("#cancel-job");
  cancel.hidden = FINAL.has(job.status);
  cancel.disabled = FINAL.has(job.status) || job.cancel_requested;
  // A failed job's stop reason is its error, shown once, below.
  const reason = job.stop_reason && job.stop_reason !== job.error ? job.stop_reason : "";
  text($("#job-stop-reason span"), reason);
  $("#job-stop-reason").hidden = !reason;
  text($("#job-error"), job.error || "");
}

/** A trial's way back to its sweep, with the params it tried. */
function renderSweepLink(job) {
  if (!job.sweep_id) return;
  const link = $("#job-sweep a");
  link.href = `#/sweeps/${job.sweep_id}`;
  text(link, job.sweep_id);
  const params = Object.entries(job.params || {}).map(([key, value]) => `${key}=${JSON.stringify(value)}`);
  text($("#job-sweep span"), params.length ? `with ${params.join(", ")}` : "");
  $("#job-sweep").hidden = false;
}

function showLatest(job, epoch) {
  text($("#epoch"), formatNumber(epoch.epoch));
  $("#job-progress").value = job.epochs ? epoch.epoch / job.epochs : 0;
  const parts = [`loss ${formatNumber(epoch.loss)}`];
  if (epoch.accuracy !== null && epoch.accuracy !== undefined) parts.push(`accuracy ${formatNumber(epoch.accuracy)}`);
  if (epoch.val_loss !== null && epoch.val_loss !== undefined) parts.push(`val_loss ${formatNumber(epoch.val_loss)}`);
  text($("#job-latest"), parts.join(" · "));
}

/** Cancel, bound to this job only, after the user confirms. */
function bindCancel(jobId, signal) {
  const cancel = $("#cancel-job");
  cancel.onclick = async () => {
    if (signal.aborted || !window.confirm(`Cancel job ${jobId}? It stops at its next epoch and keeps its checkpoints.`)) return;
    cancel.disabled = true;
    try {
      renderHeader(await getJson(`/v1/jobs/${jobId}/cancel`, { method: "POST", signal }));
    } catch (error) {
      if (!signal.aborted) { text($("#job-error"), error.message); cancel.disabled = false; }
    }
  };
}

function makeCharts(job, columns) {
  const panels = [
    { title: "Loss", names: ["loss", "val_loss"] },
    ...(job.spec.task === "classification" ? [{ title: "Accuracy", names: ["accuracy", "val_accuracy"] }] : []),
    { title: "Learning rate", names: ["lr"] },
  ];
  const box = $("#job-charts");
  const controls = bindChartControls({
    log: $("#job-log"), smoothing: $("#job-smoothing"), smoothingValue: $("#job-smoothing-value"),
  }, () => charts);
  const charts = panels.map(({ title, names }) => {
    const container = document.createElement("div");
    container.id = `chart-${names[0]}`;
    container.setAttribute("role", "img");
    container.setAttribute("aria-label", `${title} by epoch`);
    box.append(container);
    const hasValidation = job.spec.validation_fraction > 0;
    const shown = names.filter((name) => hasValidation || !name.startsWith("val_"));
    const chart = new Chart(container, {
      title,
      series: shown.map((name, index) => ({ label: name, colour: COLOURS[index] })),
      log: controls.log(),
      smoothing: controls.smoothing(),
      sync: "job",
    });
    chart.setColumns(columns.epoch, shown.map((name) => columns[name]));
    return chart;
  });
  resizeOnWindowChange(() => charts);
  return charts;
}

async function pollCheckpoints(job, artifacts, signal) {
  while (!signal.aborted && !FINAL.has(artifacts.status)) {
    await new Promise((resolve) => setTimeout(resolve, CHECKPOINT_POLL_MS));
    if (signal.aborted || FINAL.has(artifacts.status)) return;
    try {
      const current = await getJson(`/v1/jobs/${job.id}`, { signal });
      if (!signal.aborted) { artifacts.refresh(current); renderTimes(current); }
    } catch (_) { /* the event stream shows the failure */ }
  }
}

function text(element, value) { element.textContent = value; return element; }
