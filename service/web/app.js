// The dashboard: plain JavaScript, no build step, nothing fetched from outside this server.
// The API key lives in sessionStorage and travels only in the Authorization header: the event
// stream is read with fetch() and a stream reader (EventSource cannot send headers), and plots
// are fetched with the header and shown as blob URLs.
"use strict";

const KEY = "service-api-key";
const FINAL = new Set(["succeeded", "failed", "cancelled", "pruned"]);
const $ = (selector) => document.querySelector(selector);
let leave = () => {};  // stops what the current view runs (timers, streams, blob URLs)

function apiKey() { return sessionStorage.getItem(KEY); }

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? `${body.error}: ${body.detail}` : `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${apiKey()}`, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) { forgetKey("That key was refused; enter another."); }
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, body);
  }
  return response;
}

const getJson = async (path, options) => (await api(path, options)).json();

function text(element, value) { element.textContent = value; return element; }

function cell(row, value) { return text(row.insertCell(), value); }

function number(value, digits) { return value === null || value === undefined ? "-" : value.toFixed(digits); }

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

function show(view) {
  for (const id of ["key-view", "jobs-view", "job-view"]) { $(`#${id}`).hidden = id !== view; }
  $("#forget-key").hidden = view === "key-view";
}

// --- the key -------------------------------------------------------------------------------

function forgetKey(message) {
  sessionStorage.removeItem(KEY);
  text($("#key-error"), message || "");
  route();
}

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("#key-input").value.trim());
  $("#key-input").value = "";
  text($("#key-error"), "");
  route();
});
$("#forget-key").addEventListener("click", () => forgetKey(""));

// --- the jobs list -------------------------------------------------------------------------

async function showJobs() {
  show("jobs-view");
  let stopped = false;
  leave = () => { stopped = true; };
  while (!stopped) {
    try {
      const { jobs } = await getJson("/v1/jobs?limit=100");
      renderJobs(jobs);
    } catch (error) {
      if (error.status === 401) return;
    }
    await sleep(2000);
  }
}

function renderJobs(jobs) {
  const body = $("#jobs-table tbody");
  body.replaceChildren();
  $("#jobs-empty").hidden = jobs.length > 0;
  for (const job of jobs) {
    const row = body.insertRow();
    row.dataset.job = job.id;
    const link = document.createElement("a");
    link.href = `#/jobs/${job.id}`;
    text(link, job.name || job.id);
    row.insertCell().append(link);
    text(cell(row, job.status), job.status).className = `status ${job.status}`;
    const progress = document.createElement("progress");
    progress.max = job.epochs;
    progress.value = job.epoch;
    const progressCell = cell(row, `${job.epoch}/${job.epochs} `);
    progressCell.append(progress);
    const latest = job.latest || {};
    cell(row, number(latest.loss, 4));
    cell(row, number(latest.accuracy, 3));
    cell(row, job.created_at.slice(0, 19).replace("T", " "));
  }
}

// --- one job -------------------------------------------------------------------------------

async function showJob(jobId) {
  show("job-view");
  const controller = new AbortController();
  const urls = [];
  leave = () => { controller.abort(); urls.forEach((url) => URL.revokeObjectURL(url)); };
  const epochs = [];
  let job;
  try {
    job = await getJson(`/v1/jobs/${jobId}`);
  } catch (error) {
    text($("#job-error"), error.message);
    return;
  }
  text($("#job-error"), job.error || "");
  text($("#job-name"), job.name || "(unnamed)");
  text($("#job-id"), `${job.id} · ${job.parameters.toLocaleString()} parameters · ${job.device || "no device yet"}`);
  text($("#epochs"), job.epochs);
  setStatus(job);
  prefillInputs(job);
  $("#prediction").textContent = "";
  $("#cancel-job").onclick = async () => {
    try { setStatus(await getJson(`/v1/jobs/${jobId}/cancel`, { method: "POST" })); }
    catch (error) { text($("#job-error"), error.message); }
  };
  $("#refresh-plots").onclick = () => loadPlots(job, urls);
  $("#predict-form").onsubmit = (event) => { event.preventDefault(); predict(jobId); };
  drawCurves(epochs);
  loadPlots(job, urls);
  loadCheckpoints(jobId);

  await followEvents(jobId, controller.signal, (name, data) => {
    if (name === "epoch") {
      epochs.push(data);
      text($("#epoch"), data.epoch);
      $("#job-progress").value = data.epoch / job.epochs;
      text($("#job-latest"), `loss ${number(data.loss, 4)}` + (data.accuracy === null ? "" : ` · accuracy ${number(data.accuracy, 3)}`));
      drawCurves(epochs);
    } else if (name === "status") {
      const changed = data.status !== job.status;
      job = { ...job, ...data };
      setStatus(job);
      text($("#job-error"), data.error || "");
      if (changed) {
        loadCheckpoints(jobId);
        loadPlots(job, urls);
      }
    }
  });
}

function setStatus(job) {
  text($("#job-status"), job.status).className = `status ${job.status}`;
  text($("#epoch"), job.epoch);
  $("#job-progress").value = job.epochs ? job.epoch / job.epochs : 0;
  $("#cancel-job").hidden = FINAL.has(job.status);
  // A failed job's stop reason is its error, shown once, below.
  const reason = job.stop_reason && job.stop_reason !== job.error ? job.stop_reason : "";
  text($("#job-stop-reason span"), reason);
  $("#job-stop-reason").hidden = !reason;
}

// Server-Sent Events over fetch(): parsed by hand, resumed with Last-Event-ID after a drop,
// after the stream's retry field (longer when it ends on an `error` event: the database is
// unavailable, and reconnects are answered 503 until it is back).
async function followEvents(jobId, signal, onEvent) {
  let lastId = null;
  let retryMs = 2000;
  while (!signal.aborted) {
    const headers = lastId === null ? {} : { "Last-Event-ID": lastId };
    let finished = false;
    try {
      const response = await api(`/v1/jobs/${jobId}/events`, { headers, signal });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = { name: "message", id: null, data: [] };
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") event.name = value;
            else if (field === "id") event.id = value;
            else if (field === "data") event.data.push(value);
            else if (field === "retry" && /^[0-9]+$/.test(value)) retryMs = Number(value);
          }
          if (event.data.length === 0 || event.name === "error") continue;
          if (event.id !== null) lastId = event.id;
          const data = JSON.parse(event.data.join("\n"));
          onEvent(event.name, data);
          if (event.name === "status" && FINAL.has(data.status)) finished = true;
        }
      }
    } catch (error) {
      if (signal.aborted || (error.status && error.status < 500)) return;
    }
    if (finished) return;
    await sleep(retryMs);
  }
}

// --- curves drawn as the epochs arrive -----------------------------------------------------

function drawCurves(epochs) {
  const canvas = $("#live-curves");
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const panels = [
    { title: "loss", series: [["loss", "#2f6fdb"], ["val_loss", "#e67e22"]] },
    { title: "accuracy", series: [["accuracy", "#2f6fdb"], ["val_accuracy", "#e67e22"]] },
  ];
  const width = canvas.width / 2;
  panels.forEach((panel, index) => {
    const left = index * width + 50, top = 20, plotWidth = width - 70, plotHeight = canvas.height - 50;
    context.strokeStyle = "#d8dde6";
    context.strokeRect(left, top, plotWidth, plotHeight);
    context.fillStyle = "#1d2330";
    context.font = "13px system-ui, sans-serif";
    context.fillText(panel.title, left, top - 6);
    const values = panel.series.flatMap(([name]) => epochs.map((e) => e[name]).filter((v) => v !== null));
    if (values.length === 0) { context.fillText("no data yet", left + 10, top + 20); return; }
    let low = Math.min(...values), high = Math.max(...values);
    if (high === low) { high += 0.5; low -= 0.5; }
    const last = epochs[epochs.length - 1].epoch, first = epochs[0].epoch;
    const x = (epoch) => left + (last === first ? plotWidth : ((epoch - first) / (last - first)) * plotWidth);
    const y = (value) => top + plotHeight - ((value - low) / (high - low)) * plotHeight;
    context.fillStyle = "#667085";
    context.fillText(high.toPrecision(3), left - 46, top + 10);
    context.fillText(low.toPrecision(3), left - 46, top + plotHeight);
    context.fillText(`epoch ${first}`, left, top + plotHeight + 18);
    context.fillText(`${last}`, left + plotWidth - 30, top + plotHeight + 18);
    for (const [name, colour] of panel.series) {
      context.strokeStyle = colour;
      context.beginPath();
      let drawing = false;
      for (const epoch of epochs) {
        if (epoch[name] === null) continue;
        if (drawing) context.lineTo(x(epoch.epoch), y(epoch[name]));
        else { context.moveTo(x(epoch.epoch), y(epoch[name])); drawing = true; }
      }
      context.stroke();
    }
  });
}

// --- plots, checkpoints, predictions -------------------------------------------------------

function plotNames(job) {
  const inputs = job.spec.dataset.kind === "spiral" ? 2 : job.spec.dataset.kind === "quadratic" ? 1 : null;
  const names = ["curves", "data"];
  if (job.spec.task === "classification" && inputs !== 1) names.push("decision_boundary");
  if (job.spec.task === "regression" && inputs !== 2) names.push("fit");
  return names;
}

let plotsDrawn = 0;  // a newer call of loadPlots makes an older one stop

async function loadPlots(job, urls) {
  const drawing = ++plotsDrawn;
  const box = $("#plots");
  box.replaceChildren();
  for (const name of plotNames(job)) {
    if (drawing !== plotsDrawn) return;
    const figure = document.createElement("figure");
    figure.id = `plot-${name}`;
    const caption = text(document.createElement("figcaption"), `${name}.png`);
    figure.append(caption);
    box.append(figure);
    try {
      const blob = await (await api(`/v1/jobs/${job.id}/plots/${name}.png`)).blob();
      if (drawing !== plotsDrawn) return;
      const url = URL.createObjectURL(blob);
      urls.push(url);
      const image = document.createElement("img");
      image.alt = name;
      image.src = url;
      figure.prepend(image);
    } catch (error) {
      // A plot that does not apply (or not yet): the server's 409 says why.
      text(caption, `${name}.png: ${error.message}`);
    }
  }
}

async function loadCheckpoints(jobId) {
  const body = $("#checkpoints-table tbody");
  try {
    const checkpoints = await getJson(`/v1/jobs/${jobId}/checkpoints`);
    body.replaceChildren();
    for (const checkpoint of checkpoints) {
      const row = body.insertRow();
      cell(row, checkpoint.epoch);
      cell(row, checkpoint.kind);
      cell(row, number(checkpoint.metric, 6));
      cell(row, checkpoint.bytes.toLocaleString());
      cell(row, checkpoint.created_at.slice(0, 19).replace("T", " "));
    }
  } catch (error) {
    body.replaceChildren();
  }
}

function prefillInputs(job) {
  const examples = { spiral: "[[0.1, -0.3], [0.5, 0.2]]", quadratic: "[[0.5], [-0.25]]" };
  const inline = job.spec.dataset.kind === "inline" ? JSON.stringify(job.spec.dataset.inputs.slice(0, 2)) : null;
  $("#predict-inputs").value = examples[job.spec.dataset.kind] || inline || "";
}

async function predict(jobId) {
  const output = $("#prediction");
  text(output, "…");
  let inputs;
  try { inputs = JSON.parse($("#predict-inputs").value); }
  catch (error) { text(output, `The inputs are not JSON: ${error.message}`); return; }
  const body = { inputs };
  const checkpoint = $("#predict-checkpoint").value;
  if (checkpoint) body.checkpoint = checkpoint;
  try {
    const answer = await getJson(`/v1/jobs/${jobId}/predict`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    text(output, JSON.stringify(answer, null, 2));
  } catch (error) {
    text(output, error.message);
  }
}

// --- routing: #/ the jobs, #/jobs/ID one job ------------------------------------------------

function route() {
  leave();
  leave = () => {};
  if (!apiKey()) { show("key-view"); $("#key-input").focus(); return; }
  const match = location.hash.match(/^#\/jobs\/([\w-]+)$/);
  if (match) showJob(match[1]); else showJobs();
}

window.addEventListener("hashchange", route);
route();
