// Numbers, times and sizes as people read them: significant digits, not fixed decimals, so
// 1.2e34 is not 35 digits and 0.00003 is not 0.0000 (service/client/numbers.py does the same).
"use strict";

export function formatNumber(value, digits = 4) {
  if (value === null || value === undefined || value === "") return "–";
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e9) return value.toLocaleString("en");
  const size = Math.abs(value);
  if (size !== 0 && (size >= 1e6 || size < 1e-3)) {
    const [mantissa, exponent] = value.toExponential(digits - 1).split("e");
    return `${trimZeros(mantissa)}e${Number(exponent)}`;
  }
  const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(size)));
  return trimZeros(value.toFixed(decimals));
}

function trimZeros(text) { return text.includes(".") ? text.replace(/\.?0+$/, "") : text; }

export function formatBytes(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let size = bytes, unit = 0;
  while (size >= 1000 && unit < units.length - 1) { size /= 1000; unit += 1; }
  return `${formatNumber(size, 3)} ${units[unit]}`;
}

export function formatTime(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "medium" });
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const whole = Math.round(seconds);
  if (whole < 60) return seconds < 10 ? `${formatNumber(seconds, 2)} s` : `${whole} s`;
  const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
  return h ? `${h} h ${m} min` : `${m} min ${s} s`;
}

export function secondsBetween(from, to) {
  if (!from) return null;
  return ((to ? new Date(to) : new Date()) - new Date(from)) / 1000;
}
