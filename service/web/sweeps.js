// The sweeps list: the caller's sweeps, newest first, refreshed every 2 s; each links to its
// page (sweep.js).
"use strict";

import { getJson, sleep } from "./api.js";
import { formatNumber, formatTime } from "./format.js";

const $ = (selector) => document.querySelector(selector);
const REFRESH_MS = 2000;

export async function showSweeps(signal) {
  document.title = "Sweeps · PyTorch training service";
  while (!signal.aborted) {
    try {
      const page = await getJson("/v1/sweeps?limit=100", { signal });
      if (signal.aborted) return;
      renderSweeps(page.sweeps);
      $("#sweeps-error").textContent = "";
    } catch (error) {
      if (signal.aborted || error.status === 401) return;
      $("#sweeps-error").textContent = error.message;
    }
    await sleep(REFRESH_MS, signal);
  }
}

function renderSweeps(sweeps) {
  const body = $("#sweeps-table tbody");
  body.replaceChildren();
  $("#sweeps-empty").hidden = sweeps.length > 0;
  for (const sweep of sweeps) {
    const row = body.insertRow();
    row.dataset.sweep = sweep.id;
    const link = document.createElement("a");
    link.href = `#/sweeps/${sweep.id}`;
    link.textContent = sweep.name || "(unnamed)";
    row.insertCell().append(link);
    row.insertCell().textContent = sweep.id;
    const status = row.insertCell();
    status.textContent = sweep.status;
    status.className = `status ${sweep.status}`;
    row.insertCell().textContent = sweep.method;
    row.insertCell().textContent = `${formatNumber(finished(sweep))} of ${formatNumber(sweep.max_trials)} ended`;
    row.insertCell().textContent = sweep.best ? formatNumber(sweep.best.value) : "–";
    row.insertCell().textContent = formatTime(sweep.created_at);
  }
}

/** Trials that ended, however they ended. */
export function finished(sweep) {
  return Object.entries(sweep.counts)
    .filter(([status]) => status !== "queued" && status !== "running")
    .reduce((sum, [, count]) => sum + count, 0);
}
