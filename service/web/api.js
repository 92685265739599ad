// Talking to the API: the key from sessionStorage in the Authorization header (never in a URL),
// errors as ApiError, the event stream read with fetch() (EventSource cannot send headers), and
// downloads fetched with the header and saved from a blob: URL.
"use strict";

const KEY = "service-api-key";
export const FINAL = new Set(["succeeded", "failed", "cancelled", "pruned"]);
let onRefused = () => {};

export function apiKey() { return sessionStorage.getItem(KEY); }
export function setApiKey(key) { sessionStorage.setItem(KEY, key); }
export function clearApiKey() { sessionStorage.removeItem(KEY); }
export function whenKeyRefused(callback) { onRefused = callback; }

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.error = body && body.error;
  }
}

export async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${apiKey()}`, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) onRefused("That key was refused; enter another.");
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, body);
  }
  return response;
}

export const getJson = async (path, options) => (await api(path, options)).json();

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); });
  });
}

/** Save a response body (fetched with the key) as a file. */
export async function download(path, filename, options = {}) {
  saveBlob(await (await api(path, options)).blob(), filename);
}

export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// Server-Sent Events over fetch(): parsed by hand, resumed with Last-Event-ID after a drop,
// after the stream's retry field (longer when it ends on an `error` event: the database is
// unavailable, and reconnects are answered 503 until it is back). `onEvents` gets each chunk's
// events together, so a page can draw once per chunk rather than once per epoch.
export async function followEvents(path, { signal, after = 0, onEvents }) {
  let lastId = after > 0 ? String(after) : null;
  let retryMs = 2000;
  while (!signal.aborted) {
    const headers = lastId === null ? {} : { "Last-Event-ID": lastId };
    let finished = false;
    try {
      const response = await api(path, { headers, signal });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        const events = [];
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = parseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event.retry !== null) retryMs = event.retry;
          if (event.data.length === 0 || event.name === "error") continue;
          if (event.id !== null) lastId = event.id;
          const data = JSON.parse(event.data.join("\n"));
          events.push({ name: event.name, data });
          if (event.name === "status" && FINAL.has(data.status)) finished = true;
        }
        if (events.length && !signal.aborted) onEvents(events);
      }
    } catch (error) {
      if (signal.aborted || (error.status && error.status < 500)) return;
    }
    if (finished) return;
    await sleep(retryMs, signal);
  }
}

function parseEvent(block) {
  const event = { name: "message", id: null, data: [], retry: null };
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event.name = value;
    else if (field === "id") event.id = value;
    else if (field === "data") event.data.push(value);
    else if (field === "retry" && /^[0-9]+$/.test(value)) event.retry = Number(value);
  }
  return event;
}
