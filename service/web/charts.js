// Time-series charts drawn by uPlot (vendor/uplot, a global script): legend with the values
// under the cursor, axis ticks and grid, log scale, smoothing, drag to zoom (double-click to
// reset). A chart keeps its columns and redraws at most once per MIN_DRAW_MS however fast
// epochs arrive, so a 20,000-epoch run costs a few redraws, not one per epoch.
"use strict";

import { formatNumber } from "./format.js";

const MIN_DRAW_MS = 250;
export const COLOURS = ["#2f6fdb", "#e67e22", "#27ae60", "#c0392b", "#8e44ad", "#16a085",
  "#d35400", "#2c3e50", "#f1c40f", "#7f8c8d"];

/** Exponential moving average with TensorBoard's debiasing; nulls stay null. */
export function smooth(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let last = 0, count = 0;
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (value === null || value === undefined || !Number.isFinite(value)) { out[i] = null; continue; }
    last = last * weight + (1 - weight) * value;
    count += 1;
    out[i] = last / (1 - weight ** count);
  }
  return out;
}

export class Chart {
  /** `series`: [{label, colour}]; the columns given to setColumns follow their order. */
  constructor(container, { title, series, log = false, smoothing = 0, sync = null }) {
    this.container = container;
    this.title = title;
    this.series = series;
    this.log = log;
    this.smoothing = smoothing;
    this.sync = sync;
    this.x = [];
    this.ys = series.map(() => []);
    this.plot = null;
    this.pending = false;
    this.lastDraw = -Infinity;
    this.draws = 0;
    container.classList.add("chart");
  }

  /** Replace the data: x and one column per series (arrays, which the chart may keep). */
  setColumns(x, ys) {
    this.x = x;
    this.ys = ys;
    this.scheduleDraw();
  }

  setLog(log) { this.log = log; this.rebuild(); }

  setSmoothing(weight) { this.smoothing = weight; this.scheduleDraw(); }

  scheduleDraw() {
    if (this.pending) return;
    this.pending = true;
    const wait = Math.max(0, this.lastDraw + MIN_DRAW_MS - performance.now());
    this.timer = setTimeout(() => {
      this.frame = requestAnimationFrame(() => { this.pending = false; this.draw(); });
    }, wait);
  }

  data() {
    const positive = (v) => (v !== null && v > 0 ? v : null);
    return [this.x, ...this.ys.map((column) => {
      const shown = smooth(column, this.smoothing);
      return this.log ? shown.map(positive) : shown;
    })];
  }

  draw() {
    this.lastDraw = performance.now();
    this.draws += 1;
    this.container.dataset.draws = this.draws;
    this.container.dataset.points = this.x.length;
    if (this.plot === null) {
      this.plot = new uPlot(this.options(), this.data(), this.container);
      keyboardLegend(this.container);
    } else {
      this.plot.setData(this.data());
    }
  }

  rebuild() {
    if (this.plot !== null) { this.plot.destroy(); this.plot = null; }
    this.scheduleDraw();
  }

  resize() {
    if (this.plot !== null) this.plot.setSize(this.size());
  }

  size() {
    const width = Math.max(240, this.container.clientWidth || 600);
    return { width, height: Math.round(Math.min(320, Math.max(180, width * 0.45))) };
  }

  options() {
    const value = (_plot, v) => (v === null || v === undefined ? "–" : formatNumber(v));
    return {
      ...this.size(),
      title: this.title,
      cursor: { drag: { x: true, y: false }, ...(this.sync ? { sync: { key: this.sync } } : {}) },
      scales: { x: { time: false }, y: this.log ? { distr: 3 } : {} },
      axes: [
        { label: "epoch", values: (_plot, ticks) => ticks.map((t) => formatNumber(t)) },
        { size: 64, values: this.log ? decadeTicks : (_plot, ticks) => ticks.map((t) => formatNumber(t, 3)) },
      ],
      series: [
        { label: "epoch", value },
        ...this.series.map(({ label, colour }) => ({
          label, stroke: colour, width: 1.5, spanGaps: true, value, points: { show: false },
        })),
      ],
    };
  }

  destroy() {
    clearTimeout(this.timer);
    cancelAnimationFrame(this.frame);
    if (this.plot !== null) this.plot.destroy();
    this.plot = null;
    this.container.replaceChildren();
  }
}

/** Log-scale and smoothing controls applying to `charts()` (a function: the set may change). */
export function bindChartControls({ log, smoothing, smoothingValue }, charts) {
  log.onchange = () => charts().forEach((chart) => chart.setLog(log.checked));
  smoothing.oninput = () => {
    const weight = Number(smoothing.value);
    smoothingValue.textContent = weight.toFixed(2);
    charts().forEach((chart) => chart.setSmoothing(weight));
  };
  return { log: () => log.checked, smoothing: () => Number(smoothing.value) };
}

/** uPlot's legend entries show and hide their series on click; make them keys too. */
function keyboardLegend(container) {
  container.querySelectorAll(".u-legend .u-series").forEach((entry, index) => {
    if (index === 0) return;  // the x value, not a series
    entry.tabIndex = 0;
    entry.setAttribute("role", "button");
    entry.setAttribute("aria-label", `Show or hide ${entry.textContent.split(":")[0].trim()}`);
    entry.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); entry.click(); }
    });
  });
}

const isDecade = (t) => t > 0 && Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9;

/** A log axis labels powers of ten only, and every other one (or fewer) across many decades. */
function decadeTicks(_plot, ticks) {
  const step = Math.max(1, Math.ceil(ticks.filter(isDecade).length / 5));
  return ticks.map((t) => (isDecade(t) && Math.round(Math.log10(t)) % step === 0 ? formatNumber(t, 3) : ""));
}

let resizing = null;
/** Charts follow the window's width. */
export function resizeOnWindowChange(charts) {
  window.removeEventListener("resize", resizing);
  resizing = () => charts().forEach((chart) => chart.resize());
  window.addEventListener("resize", resizing);
}
