// The chart settings a page shares across its charts (x axis, log scale, smoothing, overlaid splits) and their toolbar.
// They persist in localStorage: someone who likes 0.6 smoothing wants it on the next run too.

import type { SmoothingMethod } from "./api";
import type { Band } from "./router";
import { h } from "./dom";

export type XMode = "step" | "epoch" | "time" | "rel";

export interface ViewState {
  x: XMode;
  logY: boolean;
  /** The weight in [0, 1); 0: none. The server smooths over every stored point (see chart.ts). */
  smoothing: number;
  smoothingMethod: SmoothingMethod;
  /** One chart for a metric on several splits (train/loss with valid/loss), or a chart per key. */
  overlay: boolean;
  /** What a group's band spans (compare page, runs grouped): min to max of its runs, or mean ± 1 std. */
  band: Band;
}

const STORAGE_KEY = "epochal.chartView";
const DEFAULTS: ViewState = { x: "step", logY: false, smoothing: 0, smoothingMethod: "time_ema", overlay: true, band: "minmax" };

export class ChartView {
  state: ViewState;
  private listeners: ((changed: (keyof ViewState)[]) => void)[] = [];

  constructor() {
    this.state = { ...DEFAULTS, ...load() };
  }

  set(patch: Partial<ViewState>): void {
    const changed = (Object.keys(patch) as (keyof ViewState)[]).filter((k) => patch[k] !== this.state[k]);
    if (!changed.length) return;
    this.state = { ...this.state, ...patch };
    localStorage.setItem(STORAGE_KEY, JSON.stringify(this.state));
    // A listener may remove others (the grid destroys charts when splits are overlaid or separated).
    for (const fn of [...this.listeners]) if (this.listeners.includes(fn)) fn(changed);
  }

  onChange(fn: (changed: (keyof ViewState)[]) => void): () => void {
    this.listeners.push(fn);
    return () => (this.listeners = this.listeners.filter((l) => l !== fn));
  }
}

function load(): Partial<ViewState> {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "{}") as Partial<ViewState>;
    const out: Partial<ViewState> = {};
    if (saved.x && ["step", "epoch", "time", "rel"].includes(saved.x)) out.x = saved.x;
    if (typeof saved.logY === "boolean") out.logY = saved.logY;
    if (typeof saved.overlay === "boolean") out.overlay = saved.overlay;
    if (saved.band === "minmax" || saved.band === "std") out.band = saved.band;
    if (typeof saved.smoothing === "number" && saved.smoothing >= 0 && saved.smoothing < 1) out.smoothing = saved.smoothing;
    if (saved.smoothingMethod && SMOOTHING_METHODS.some(([m]) => m === saved.smoothingMethod)) out.smoothingMethod = saved.smoothingMethod;
    return out;
  } catch {
    return {};
  }
}

const X_LABELS: [XMode, string][] = [
  ["step", "Step"],
  ["epoch", "Epoch"],
  ["rel", "Relative time"],
  ["time", "Wall time"],
];

const SMOOTHING_METHODS: [SmoothingMethod, string, string][] = [
  ["time_ema", "time-weighted EMA",
    "Exponential moving average whose decay follows the gap in steps between points: points logged more often in one place do not pull the curve. The same as TensorBoard's where steps are evenly spaced."],
  ["ema", "TensorBoard EMA", "TensorBoard's debiased exponential moving average, point by point."],
];

/** The toolbar above a page's charts. `extra` holds page-specific controls (the compare key selector). */
export function chartToolbar(view: ChartView, ...extra: HTMLElement[]): HTMLElement {
  const xButtons = X_LABELS.map(([mode, label]) =>
    h("button", {
      type: "button",
      class: "seg" + (view.state.x === mode ? " active" : ""),
      dataset: { mode },
      onclick: () => view.set({ x: mode }),
    }, label),
  );
  const log = h("input", { type: "checkbox", checked: view.state.logY, onchange: () => view.set({ logY: log.checked }) });
  const overlay = h("input", { type: "checkbox", class: "overlay-toggle", checked: view.state.overlay, onchange: () => view.set({ overlay: overlay.checked }) });
  const smoothValue = h("output", { class: "num" }, view.state.smoothing.toFixed(2));
  const slider = h("input", {
    type: "range",
    min: "0",
    max: "0.99",
    step: "0.01",
    value: String(view.state.smoothing),
    oninput: () => {
      smoothValue.textContent = Number(slider.value).toFixed(2);
      view.set({ smoothing: Number(slider.value) });
    },
  });
  slider.value = String(view.state.smoothing);
  const method = h("select", {
    class: "smoothing-method",
    "aria-label": "Smoothing method",
    title: SMOOTHING_METHODS.map(([, label, help]) => `${label}: ${help}`).join("\n"),
    onchange: () => view.set({ smoothingMethod: method.value as SmoothingMethod }),
  }, SMOOTHING_METHODS.map(([value, label]) => h("option", { value }, label)));
  method.value = view.state.smoothingMethod;
  view.onChange(() => {
    xButtons.forEach((b) => b.classList.toggle("active", b.dataset.mode === view.state.x));
  });

  return h("div", { class: "toolbar" },
    h("div", { class: "tool" }, h("span", { class: "tool-label" }, "X axis"), h("div", { class: "segmented" }, xButtons)),
    h("label", { class: "tool" }, log, "Log y"),
    h("label", { class: "tool", title: "One chart for a metric on several splits: train/loss with valid/loss, train/accuracy with eval/accuracy" }, overlay, "Overlay splits"),
    h("label", { class: "tool smoothing", title: "Smoothed over every logged point on the server, so zooming does not change the curve. The raw curve stays faint behind." },
      h("span", { class: "tool-label" }, "Smoothing"), slider, smoothValue),
    h("div", { class: "tool" }, method),
    extra,
    h("span", { class: "tool-hint" }, "drag: zoom · double-click: reset · shift-drag: pan · ctrl+wheel: zoom"),
  );
}
