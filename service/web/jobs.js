// The jobs list: refreshed every 2 s by updating its rows in place (focus, selection and ticked
// boxes survive), paged with the API's cursor, filtered by status and name, and the start of a
// comparison: tick jobs, then "Compare selected".
"use strict";

import { getJson, sleep } from "./api.js";
import { formatNumber, formatTime } from "./format.js";

const $ = (selector) => document.querySelector(selector);
const PAGE_SIZE = 50;
const REFRESH_MS = 2000;
const selected = new Set();  // ids ticked for comparison, kept across pages and refreshes
const state = { cursors: [null], status: "", name: "" };  // cursors[i]: where page i starts

export async function showJobs(signal) {
  document.title = "Jobs · PyTorch training service";
  bindControls();
  let refreshes = 0;
  while (!signal.aborted) {
    try {
      const page = await getJson(`/v1/jobs?${query()}`, { signal });
      if (signal.aborted) return;
      renderJobs(page);
      text($("#jobs-error"), "");
    } catch (error) {
      if (signal.aborted || error.status === 401) return;
      text($("#jobs-error"), error.message);
    }
    $("#jobs-table").dataset.refreshes = ++refreshes;
    if (!changed) {
      await new Promise((resolve) => { wake = resolve; sleep(REFRESH_MS, signal).then(resolve); });
    }
    changed = false;
  }
}

function query() {
  const params = new URLSearchParams({ limit: PAGE_SIZE });
  const cursor = state.cursors[state.cursors.length - 1];
  if (cursor) params.set("cursor", cursor);
  if (state.status) params.set("status", state.status);
  if (state.name) params.set("name", state.name);
  return params;
}

let wake = () => {};  // ends the wait between refreshes: a filter or page changed
let changed = false;
function bindControls() {
  const reload = () => { changed = true; wake(); };
  const restart = () => { state.cursors = [null]; reload(); };
  $("#filter-status").onchange = () => { state.status = $("#filter-status").value; restart(); };
  let typing;
  $("#filter-name").oninput = () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.name = $("#filter-name").value.trim(); restart(); }, 300);
  };
  $("#jobs-filter").onsubmit = (event) => event.preventDefault();
  $("#jobs-older").onclick = () => { state.cursors.push($("#jobs-older").dataset.cursor); reload(); };
  $("#jobs-newer").onclick = () => { state.cursors.pop(); reload(); };
  $("#compare-selected").onclick = () => { location.hash = `#/compare/${[...selected].join(",")}`; };
  updateCompareButton();
}

function renderJobs({ jobs, next_cursor: next }) {
  const body = $("#jobs-table tbody");
  const rows = new Map([...body.rows].map((row) => [row.dataset.job, row]));
  let previous = null;
  for (const job of jobs) {
    let row = rows.get(job.id);
    rows.delete(job.id);
    if (!row) row = newRow(job);
    updateRow(row, job);
    // Moved only when out of place: moving the focused row would drop its focus.
    const wanted = previous ? previous.nextSibling : body.firstChild;
    if (wanted !== row) body.insertBefore(row, wanted);
    previous = row;
  }
  rows.forEach((row) => row.remove());
  $("#jobs-empty").hidden = jobs.length > 0;
  const page = state.cursors.length;
  $("#jobs-newer").disabled = page === 1;
  $("#jobs-older").disabled = !next;
  $("#jobs-older").dataset.cursor = next || "";
  text($("#jobs-page"), `page ${page}`);
}

function newRow(job) {
  const row = document.createElement("tr");
  row.dataset.job = job.id;
  const tick = document.createElement("input");
  tick.type = "checkbox";
  tick.checked = selected.has(job.id);
  tick.setAttribute("aria-label", `Select ${job.name || job.id} to compare`);
  tick.onchange = () => {
    if (tick.checked) selected.add(job.id); else selected.delete(job.id);
    updateCompareButton();
  };
  row.insertCell().append(tick);
  const link = document.createElement("a");
  link.href = `#/jobs/${job.id}`;
  row.insertCell().append(link);
  for (let i = 0; i < 6; i++) row.insertCell();
  row.cells[2].className = "id";
  row.cells[3].append(document.createElement("span"));
  for (const index of [4, 5, 6]) row.cells[index].className = "number";
  const progress = document.createElement("progress");
  progress.setAttribute("aria-label", "Progress");
  row.cells[4].append(document.createElement("span"), " ", progress);
  return row;
}

function updateRow(row, job) {
  const latest = job.latest || {};
  text(row.cells[1].firstChild, job.name || "(unnamed)");
  text(row.cells[2], job.id);
  const status = row.cells[3].firstChild;
  text(status, job.status);
  if (status.className !== `status ${job.status}`) status.className = `status ${job.status}`;
  text(row.cells[4].firstChild, `${formatNumber(job.epoch)}/${formatNumber(job.epochs)}`);
  const progress = row.cells[4].lastChild;
  if (progress.max !== job.epochs) progress.max = job.epochs;
  if (progress.value !== job.epoch) progress.value = job.epoch;
  text(row.cells[5], formatNumber(latest.loss));
  text(row.cells[6], formatNumber(latest.accuracy));
  text(row.cells[7], formatTime(job.created_at));
}

function updateCompareButton() {
  const button = $("#compare-selected");
  button.disabled = selected.size < 2;
  text(button, selected.size ? `Compare selected (${selected.size})` : "Compare selected");
}

/** Set text only when it changed: rewriting it would clear a selection inside it. */
function text(element, value) {
  if (element.textContent !== String(value)) element.textContent = value;
  return element;
}
