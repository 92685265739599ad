// The predict form: the expected input shape, JSON or a .npy file, any checkpoint, top k for
// classification, and the answer as a table (the raw JSON beside it).
"use strict";

import { getJson } from "./api.js";
import { formatNumber } from "./format.js";
import { inputShape, outputCount } from "./job_details.js";

const $ = (selector) => document.querySelector(selector);
const NAMED = ["", "latest", "final"];

export function setUpPredict(job) {
  const spec = job.spec;
  const shape = inputShape(spec);
  const classes = spec.task === "classification";
  const shapeText = shape ? `[n, ${shape.join(", ")}]` : "[n, …] (the training samples' shape)";
  $("#predict-shape").textContent = `Expected inputs: shape ${shapeText}; ` +
    (classes ? "answers a class per sample." : `answers ${outputCount(spec) ?? "the"} value(s) per sample.`);
  $("#predict-top-k-label").hidden = !classes;
  $("#predict-top-k").value = "";
  $("#predict-file").value = "";
  $("#predict-inputs").value = example(spec);
  $("#prediction").replaceChildren();
  setEpochs([]);
  $("#predict-form").onsubmit = (event) => { event.preventDefault(); predict(job); };
  return { setCheckpoints: (checkpoints) => setEpochs(checkpoints.map((c) => c.epoch)) };
}

function example(spec) {
  const examples = { spiral: "[[0.1, -0.3], [0.5, 0.2]]", quadratic: "[[0.5], [-0.25]]" };
  if (spec.dataset.kind === "inline") return JSON.stringify(spec.dataset.inputs.slice(0, 2));
  return examples[spec.dataset.kind] || "";
}

function setEpochs(epochs) {
  const select = $("#predict-checkpoint");
  const chosen = select.value;
  [...select.options].filter((option) => !NAMED.includes(option.value)).forEach((option) => option.remove());
  for (const epoch of [...new Set(epochs)]) {
    const option = document.createElement("option");
    option.value = String(epoch);
    option.textContent = `epoch ${formatNumber(epoch)}`;
    select.append(option);
  }
  select.value = [...select.options].some((option) => option.value === chosen) ? chosen : "";
}

async function predict(job) {
  const output = $("#prediction");
  output.textContent = "…";
  const checkpoint = $("#predict-checkpoint").value;
  const topK = $("#predict-top-k").value;
  const file = $("#predict-file").files[0];
  let request;
  if (file) {
    const query = new URLSearchParams();
    if (checkpoint) query.set("checkpoint", checkpoint);
    if (topK) query.set("top_k", topK);
    request = { method: "POST", headers: { "Content-Type": "application/x-npy" }, body: await file.arrayBuffer(), query };
  } else {
    let inputs;
    try { inputs = JSON.parse($("#predict-inputs").value); } catch (error) {
      output.textContent = `The inputs are not JSON: ${error.message}`;
      return;
    }
    const body = { inputs };
    if (checkpoint) body.checkpoint = /^[0-9]+$/.test(checkpoint) ? Number(checkpoint) : checkpoint;
    if (topK) body.top_k = Number(topK);
    request = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), query: null };
  }
  const suffix = request.query && String(request.query) ? `?${request.query}` : "";
  try {
    const answer = await getJson(`/v1/jobs/${job.id}/predict${suffix}`, request);
    output.replaceChildren(answerTable(answer), rawAnswer(answer));
  } catch (error) {
    output.textContent = error.message;
  }
}

function answerTable(answer) {
  const table = document.createElement("table");
  table.id = "prediction-table";
  const caption = table.createCaption();
  caption.textContent = `From the epoch ${formatNumber(answer.checkpoint.epoch)} checkpoint (${answer.checkpoint.kind})`;
  const head = table.createTHead().insertRow();
  const columns = ["Sample", "Prediction"];
  if (answer.probabilities) columns.push("Probability");
  if (answer.top_k) columns.push("Top classes");
  for (const name of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    head.append(th);
  }
  const body = table.createTBody();
  answer.predictions.forEach((prediction, index) => {
    const row = body.insertRow();
    row.insertCell().textContent = index + 1;
    row.insertCell().textContent = Array.isArray(prediction) ? prediction.map((v) => formatNumber(v)).join(", ") : formatNumber(prediction);
    if (answer.probabilities) row.insertCell().textContent = formatNumber(answer.probabilities[index][prediction]);
    if (answer.top_k) {
      row.insertCell().textContent = answer.top_k[index].map((entry) => `${entry.class}: ${formatNumber(entry.probability)}`).join(", ");
    }
  });
  return table;
}

function rawAnswer(answer) {
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "JSON";
  const pre = document.createElement("pre");
  pre.id = "prediction-json";
  pre.textContent = JSON.stringify(answer, null, 2);
  details.append(summary, pre);
  return details;
}
