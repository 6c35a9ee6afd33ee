// Parallel coordinates in plain SVG: an axis per config key that varies across runs, then a metric
// axis; one polyline per run, coloured by the metric. Shows which settings go with good results.
// Positive values spanning two decades or more (learning rates, weight decays) get a log axis; a click
// on an axis's name or scale switches it between log and linear.

import type { ConfigValue } from "./api";
import { sequential } from "./colors";
import { h, svg } from "./dom";
import { fmtConfig, fmtNum, fmtTick, fullNum } from "./format";

export interface ParallelRun {
  id: string;
  name: string;
  config: Record<string, ConfigValue>;
  metric: number | null;
}

/** The axes' scales the reader chose, by axis id (a config key, or "metric"): true for log. */
export type AxisScales = Map<string, boolean>;

interface Axis {
  /** A config key, or "metric". */
  id: string;
  label: string;
  /** A second, smaller line under the label: "log", "best". */
  sub: string;
  title: string;
  /** Position in [0, 1] (0 = bottom) of a run's value, or null where the run has none. */
  pos: (r: ParallelRun) => number | null;
  ticks: [number, string][];
  /** A numeric axis of positive values can be either; others are neither. */
  scale: "log" | "linear" | null;
}

const HEIGHT = 300;
// Left: room for a tick label such as 0.0001 left of the first axis.
const M = { top: 44, bottom: 28, left: 56, right: 60 };
const MIN_GAP = 120;

/**
 * The config keys whose values are not all equal (a key missing from some runs counts as varying).
 * Keys that only one run has say little about the others: they come only when nothing else varies.
 */
export function varyingKeys(runs: ParallelRun[], keys: string[]): string[] {
  const varying = keys.filter((k) => new Set(runs.map((r) => JSON.stringify(r.config[k] ?? null))).size > 1);
  const shared = varying.filter((k) => runs.filter((r) => k in r.config).length >= 2);
  return shared.length ? shared : varying;
}

/** `available` is the container's width: the plot fills it, and scrolls sideways past it with many axes. */
export function parallelCoords(
  runs: ParallelRun[],
  keys: string[],
  metric: { key: string; which: string },
  available: number,
  onOpen: (id: string) => void,
  scales: { chosen: AxisScales; onToggle: (axis: string, log: boolean) => void } = { chosen: new Map(), onToggle: () => {} },
): HTMLElement {
  const metricLabel = `${metric.key} (${metric.which})`;
  const axes = [
    ...keys.map((k) => axisFor(k, runs.map((r) => r.config[k] ?? null), (r) => r.config[k] ?? null, scales.chosen.get(k))),
    metricAxis(runs, metric.key, metric.which, scales.chosen.get("metric")),
  ];
  const wrap = h("div", { class: "parallel" });
  const width = Math.max(available, 480, M.left + M.right + (axes.length - 1) * MIN_GAP);
  const plotH = HEIGHT - M.top - M.bottom;
  const xOf = (i: number) => (axes.length === 1 ? width / 2 : M.left + (i * (width - M.left - M.right)) / (axes.length - 1));
  const yOf = (p: number) => M.top + (1 - p) * plotH;
  // Labels get the room between two axes (about 7 px a character); the tail of a key tells keys apart.
  const labelChars = Math.max(8, Math.floor((axes.length > 1 ? xOf(1) - xOf(0) : width) / 7) - 1);

  const root = svg("svg", { class: "parallel-svg", viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: "img" });
  const tip = h("div", { class: "parallel-tip", hidden: true });

  const metrics = runs.map((r) => r.metric).filter((v): v is number => v !== null);
  const [mLo, mHi] = [Math.min(...metrics), Math.max(...metrics)];
  const colorOf = (r: ParallelRun) => (r.metric === null ? "#9aa3af" : sequential(mHi > mLo ? (r.metric - mLo) / (mHi - mLo) : 0.5));

  // Lines first, so axes and their labels stay readable on top.
  const lines = svg("g", { class: "lines" });
  for (const run of runs) {
    // A run without a value on an axis is drawn below it, at the "missing" mark.
    const pts = axes.map((a, i) => `${xOf(i).toFixed(1)},${yOf(a.pos(run) ?? -0.06).toFixed(1)}`).join(" ");
    const line = svg("polyline", { points: pts, stroke: colorOf(run), class: "pc-line" });
    const hit = svg("polyline", { points: pts, class: "pc-hit" });
    const g = svg("g", { class: "pc-run" }, line, hit);
    hit.addEventListener("mouseenter", () => {
      root.classList.add("hovering");
      g.classList.add("hl");
      lines.appendChild(g); // to the front
      tip.hidden = false;
      tip.textContent = `${run.name}  ·  ${metricLabel} = ${fmtNum(run.metric)}`;
    });
    hit.addEventListener("mousemove", (e) => {
      const box = wrap.getBoundingClientRect();
      tip.style.left = `${e.clientX - box.left + 12}px`;
      tip.style.top = `${e.clientY - box.top + 12}px`;
    });
    hit.addEventListener("mouseleave", () => {
      root.classList.remove("hovering");
      g.classList.remove("hl");
      tip.hidden = true;
    });
    hit.addEventListener("click", () => onOpen(run.id));
    lines.append(g);
  }
  root.append(lines);

  axes.forEach((a, i) => {
    const x = xOf(i);
    const g = svg("g", { class: i === axes.length - 1 ? "pc-axis metric" : "pc-axis", "data-key": a.id, "data-scale": a.scale ?? "" });
    g.append(svg("line", { x1: x, x2: x, y1: M.top, y2: M.top + plotH }));
    // The last axis sits at the right edge: anchor its label there so it is not cut off.
    const anchor = i === axes.length - 1 && axes.length > 1 ? "end" : i === 0 && axes.length > 1 ? "start" : "middle";
    const lx = anchor === "end" ? x + 8 : anchor === "start" ? x - 8 : x;
    const label = svg("text", { x: lx, y: M.top - 24, class: "pc-label", "text-anchor": anchor }, truncate(a.label, labelChars));
    const sub = [a.sub, a.scale].filter(Boolean).join(" · ");
    const subText = sub ? svg("text", { x: lx, y: M.top - 11, class: "pc-sub", "text-anchor": anchor }, sub) : null;
    if (a.scale) {
      const other = a.scale === "log" ? "linear" : "log";
      for (const el of [label, subText!]) {
        el.classList.add("pc-toggle");
        el.addEventListener("click", () => scales.onToggle(a.id, other === "log"));
      }
      subText!.append(svg("title", {}, `${a.scale} axis: click for a ${other} one`));
    }
    label.append(svg("title", {}, a.scale ? `${a.title}\n${a.scale} axis: click for a ${a.scale === "log" ? "linear" : "log"} one` : a.title));
    g.append(label);
    if (subText) g.append(subText);
    let lastY = -Infinity;
    for (const [p, text] of [...a.ticks].sort((t, u) => u[0] - t[0])) {
      const y = yOf(p);
      if (y - lastY < 11) continue; // labels closer than a line of text would overlap
      lastY = y;
      g.append(svg("line", { x1: x - 3, x2: x, y1: y, y2: y }));
      g.append(svg("text", { x: x - 6, y: y + 3.5, class: "pc-tick", "text-anchor": "end" }, truncate(text, 14)));
    }
    if (runs.some((r) => a.pos(r) === null)) {
      g.append(svg("text", { x: x - 6, y: yOf(-0.06) + 3.5, class: "pc-tick missing", "text-anchor": "end" }, "none"));
    }
    root.append(g);
  });

  wrap.append(root, tip, colorBar(metricLabel, metrics.length ? [mLo, mHi] : null));
  return wrap;
}

function axisFor(key: string, values: ConfigValue[], get: (r: ParallelRun) => ConfigValue, log: boolean | undefined): Axis {
  const present = values.filter((v) => v !== null);
  if (present.length && present.every((v) => typeof v === "number")) {
    return numericAxis(key, key, key, present as number[], fmtConfigNumber, (r) => {
      const v = get(r);
      return typeof v === "number" ? v : null;
    }, log);
  }
  // Strings, booleans and mixed values: evenly spaced categories in natural order.
  const cats = [...new Set(present.map((v) => fmtConfig(v)))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const posOf = (c: string) => (cats.length === 1 ? 0.5 : cats.indexOf(c) / (cats.length - 1));
  return {
    id: key,
    label: key,
    sub: "",
    title: key,
    pos: (r) => {
      const v = get(r);
      return v === null ? null : posOf(fmtConfig(v));
    },
    ticks: cats.map((c) => [posOf(c), c]),
    scale: null,
  };
}

function metricAxis(runs: ParallelRun[], key: string, which: string, log: boolean | undefined): Axis {
  const values = runs.map((r) => r.metric).filter((v): v is number => v !== null);
  const axis = numericAxis("metric", key, `${key} (${which})`, values, (v) => fmtNum(v), (r) => r.metric, log);
  return { ...axis, sub: which };
}

/** `log`: the reader's choice; undefined for the automatic one. */
function numericAxis(
  id: string, label: string, title: string, values: number[], fmt: (v: number) => string,
  get: (r: ParallelRun) => number | null, chosen: boolean | undefined,
): Axis {
  if (!values.length) return { id, label, sub: "", title, pos: () => null, ticks: [], scale: null };
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  // Learning rates and weight decays span decades: a log axis spreads them evenly. Only positive
  // values have one; a reader can ask for either.
  const canLog = lo > 0 && hi > lo;
  const log = canLog && (chosen ?? hi / lo >= 100);
  const f = log ? Math.log10 : (v: number) => v;
  const [a, b] = [f(lo), f(hi)];
  const pos = (v: number) => (b > a ? (f(v) - a) / (b - a) : 0.5);
  // A handful of distinct values (batch sizes, seeds) are labelled as they are; else 5 even ticks.
  const distinct = [...new Set(values)].sort((x, y) => x - y);
  const ticks: [number, string][] =
    distinct.length <= 6 ? distinct.map((v) => [pos(v), fmt(v)]) : [0, 0.25, 0.5, 0.75, 1].map((t) => {
      const v = log ? Math.pow(10, a + t * (b - a)) : lo + t * (hi - lo);
      return [t, fmtTick(Number(v.toPrecision(3)))];
    });
  return {
    id,
    label,
    sub: "",
    title,
    pos: (r) => {
      const v = get(r);
      return v === null ? null : pos(v);
    },
    ticks,
    scale: canLog ? (log ? "log" : "linear") : null,
  };
}

function colorBar(label: string, range: [number, number] | null): HTMLElement {
  if (!range) return h("div", { class: "muted pc-legend" }, `No run has a value for ${label}.`);
  const stops = Array.from({ length: 7 }, (_, i) => sequential(i / 6)).join(", ");
  return h("div", { class: "pc-legend" },
    h("span", { class: "muted" }, label),
    h("span", { class: "num", title: fullNum(range[0]) }, fmtNum(range[0])),
    h("span", { class: "pc-bar", style: { background: `linear-gradient(to right, ${stops})` } }),
    h("span", { class: "num", title: fullNum(range[1]) }, fmtNum(range[1])),
  );
}

/** A config number as written when short (0.0003), else rounded: a tick has little room. */
function fmtConfigNumber(v: number): string {
  const s = String(v);
  return s.length <= 8 ? s : fmtNum(v, 4);
}

function truncate(s: string, n: number): string {
  return s.length > n ? "…" + s.slice(s.length - n + 1) : s;
}
