// The dashboard: plain JavaScript modules, no build step, nothing fetched from outside this
// server. This file holds the key prompt and the routes; each view lives in a module of its own
// and gets the part of the URL it matched and an AbortSignal that fires when the user leaves it.
//
// A new view: add a <section id="NAME-view" class="view"> to index.html, a module exporting
// `async function showNAME(match, signal)`, and one addRoute() line below.
"use strict";

import { apiKey, clearApiKey, setApiKey, whenKeyRefused } from "./api.js";
import { showCompare } from "./compare.js";
import { showJob } from "./job.js";
import { showJobs } from "./jobs.js";
import { showSweep } from "./sweep.js";
import { showSweeps } from "./sweeps.js";

const $ = (selector) => document.querySelector(selector);
const routes = [];  // [pattern on location.hash, section id, handler(match, signal)]
let leaving = new AbortController();

export function addRoute(pattern, view, handler) { routes.push({ pattern, view, handler }); }

addRoute(/^#\/jobs\/([\w-]+)$/, "job-view", (match, signal) => showJob(match[1], signal));
addRoute(/^#\/compare\/([\w,-]+)$/, "compare-view", (match, signal) => showCompare(match[1].split(",").filter(Boolean), signal));
addRoute(/^#\/sweeps\/([\w-]+)$/, "sweep-view", (match, signal) => showSweep(match[1], signal));
addRoute(/^#\/sweeps\/?$/, "sweeps-view", (_match, signal) => showSweeps(signal));
addRoute(/^(#\/?)?$/, "jobs-view", (_match, signal) => showJobs(signal));

function show(view) {
  for (const section of document.querySelectorAll("section.view")) section.hidden = section.id !== view;
  $("#forget-key").hidden = view === "key-view";
}

function route() {
  leaving.abort();
  leaving = new AbortController();
  if (!apiKey()) {
    show("key-view");
    document.title = "API key · PyTorch training service";
    $("#key-input").focus();
    return;
  }
  const hash = location.hash;
  for (const { pattern, view, handler } of routes) {
    const match = hash.match(pattern);
    if (match) { show(view); handler(match, leaving.signal); return; }
  }
  location.hash = "#/";  // an address no view knows: the jobs list
}

function forgetKey(message) {
  clearApiKey();
  $("#key-error").textContent = message || "";
  route();
}

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey($("#key-input").value.trim());
  $("#key-input").value = "";
  $("#key-error").textContent = "";
  route();
});
$("#forget-key").addEventListener("click", () => forgetKey(""));
whenKeyRefused(forgetKey);
window.addEventListener("hashchange", route);
route();
