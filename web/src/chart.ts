// One chart: a key's curve for one or more runs, drawn with uPlot.
// The server sends at most ~2000 points per series (each bucket's min and max); zooming fetches the
// visible range again so finer points appear, and resetting fetches the full range. Smoothing is done
// by the server over every stored point and sent beside the points, so the smoothed curve is the same
// at any zoom and chart size; a new weight or method is a new fetch.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api, ApiError, errorMessage, isAbort, type Series, type SeriesQuery } from "./api";
import type { ChartView, XMode } from "./chartview";
import { withAlpha } from "./colors";
import type { EventMarks } from "./eventmarks";
import { debounce, h, replace } from "./dom";
import { fmtDateTime, fmtInt, fmtNum, fmtRelTick, fmtTick } from "./format";
import { zoomPlugin } from "./zoomplugin";

/** One line of a chart: a run's series of the chart's key, or of `key` where a chart overlays keys. */
export interface ChartRun {
  id: string;
  name: string;
  color: string;
  /** Unix seconds; the origin of the relative-time axis. */
  started: number;
  /** The key this line draws, where it is not the chart's own (train/loss in "{train,valid}/loss"). */
  key?: string;
  /** The line's dash pattern (canvas setLineDash), telling splits apart in a run's colour. */
  dash?: number[];
  /**
   * Where the line is a group's: its runs. The line is their mean at each x, with a band (min-max or
   * ±1 std, the view's `band`) around it; `id` then names the group.
   */
  members?: { id: string; started: number }[];
}

/** One run's series as drawn: x in display units (relative time already subtracted). */
interface Drawn {
  run: ChartRun;
  xs: number[];
  ys: (number | null)[];
  /** The server's smoothed values at xs, when smoothing is on. */
  smoothed: (number | null)[] | null;
  /** A group's band at xs: lower and upper bounds. */
  band: { lo: (number | null)[]; hi: (number | null)[] } | null;
}

const HEIGHT = 210;
// About how many points a chart asks for: more would not show, fewer would hide detail on hover.
const TARGET_POINTS = 2000;

export class Chart {
  readonly el: HTMLDivElement;
  private readonly plotEl: HTMLDivElement;
  private readonly legendEl: HTMLDivElement;
  private readonly notesEl: HTMLSpanElement;
  private plot: uPlot | null = null;
  private structure = "";
  private loaded = new Map<string, Series>();
  private errors = new Map<string, string>();
  private drawn: Drawn[] = [];
  /** Display-x extent of the full series, once known: the bounds for zoom and pan. */
  private full: [number, number] | null = null;
  /** Whether the full-range fetch already held every point (then zooming needs no refetch). */
  private fullComplete = false;
  /** The range the loaded data was fetched for; null = full range. */
  private loadedRange: [number, number] | null = null;
  private zoom: [number, number] | null = null;
  private seq = 0;
  private draws = 0;
  private pendingDraw = false;
  private points = 0;
  private smoothedLast = "";
  private groupsJson = "";
  private readonly refetchSoon = debounce(() => void this.load(), 200);
  private readonly unlisten: () => void;
  private readonly resize: ResizeObserver;

  constructor(
    readonly key: string,
    private readonly runs: ChartRun[],
    private readonly view: ChartView,
    private readonly signal: AbortSignal,
    private readonly syncKey: string,
    /** The run's ledger events, marked on the x axis (the run page's loss and accuracy charts). */
    private readonly marks: EventMarks | null = null,
  ) {
    this.plotEl = h("div", { class: "chart-plot loading" });
    this.legendEl = h("div", { class: "chart-legend" });
    this.notesEl = h("span", { class: "chart-notes" });
    const keys = [...new Set(runs.map((r) => r.key ?? key))];
    const csvLink = (k: string, text: string, cls: string) => h("a", {
      class: cls,
      href: api.seriesCsvUrl(k, runs.filter((r) => (r.key ?? key) === k).flatMap((r) => r.members?.map((m) => m.id) ?? [r.id])),
      download: "",
      title: `All points of ${k}, full resolution`,
    }, text);
    // A CSV holds one key: a chart of several keys offers a menu of them.
    const csv = keys.length === 1 ? csvLink(key, "CSV", "mini-btn")
      : h("details", { class: "csv-menu" }, h("summary", { class: "mini-btn" }, "CSV"),
        h("div", { class: "csv-menu-list", onclick: () => ((csv as HTMLDetailsElement).open = false) }, keys.map((k) => csvLink(k, k, "csv-menu-item"))));
    const png = h("button", { type: "button", class: "mini-btn", onclick: () => this.downloadPng() }, "PNG");
    this.el = h("div", { class: "chart", dataset: { key, keys: keys.join(" "), draws: "0" } },
      h("div", { class: "chart-head" }, h("span", { class: "chart-title", title: keys.join("\n") }, key), this.notesEl, h("span", { class: "chart-actions" }, csv, png)),
      this.plotEl,
      this.legendEl,
    );
    this.unlisten = view.onChange((changed) => {
      if (changed.includes("x")) {
        // Ranges in another unit mean nothing: start over with the full range.
        this.zoom = null;
        this.full = null;
        void this.load();
      } else if ((changed.includes("smoothing") || changed.includes("smoothingMethod")) && this.view.state.smoothing > 0) {
        this.refetchSoon();
      } else if (changed.some((c) => c !== "overlay")) this.render(); // overlaying is the grid's business
    });
    this.resize = new ResizeObserver(() => {
      if (this.plot && this.plotEl.clientWidth > 0 && Math.abs(this.plot.width - this.plotEl.clientWidth) > 1) {
        this.plot.setSize({ width: this.plotEl.clientWidth, height: HEIGHT });
      }
    });
    this.resize.observe(this.plotEl);
  }

  /** Fetches every run's series for the current x axis and zoom, then draws. Also the live refresh. */
  async load(): Promise<void> {
    const seq = ++this.seq;
    const { x: mode, smoothing, smoothingMethod } = this.view.state;
    const zoom = this.zoom;
    const points = this.pointsWanted();
    // A group's line fetches each of its runs' series; render() takes their mean.
    const fetches = this.runs.flatMap((run) => (run.members ?? [run]).map((m, j) => ({ run, m, id: run.members ? memberId(run, j) : lineId(run) })));
    const results = await Promise.allSettled(
      fetches.map(({ run, m }) => {
        // The server adds one point beyond each end of a range, so lines reach the plot's edges.
        const offset = mode === "rel" ? m.started : 0;
        const [min, max] = zoom ? [zoom[0] + offset, zoom[1] + offset] : [undefined, undefined];
        const q: SeriesQuery = { key: run.key ?? this.key, x: mode === "rel" ? "time" : mode, min, max, points, smoothing, smoothingMethod };
        return api.series(m.id, q, this.signal);
      }),
    );
    // A newer load (another zoom, another axis) started meanwhile: its answer wins.
    if (seq !== this.seq || this.signal.aborted) return;
    this.loaded = new Map();
    this.errors = new Map();
    results.forEach((res, i) => {
      const { run, id } = fetches[i];
      if (res.status === "fulfilled") this.loaded.set(id, res.value);
      else if (!isAbort(res.reason)) {
        const msg = res.reason instanceof ApiError && res.reason.status === 404 ? "no such key" : errorMessage(res.reason);
        this.errors.set(lineId(run), msg);
      }
    });
    this.loadedRange = zoom;
    this.pendingDraw = true;
    this.render();
    if (!zoom) {
      this.full = extent(this.drawn);
      this.fullComplete = [...this.loaded.values()].every((s) => !s.downsampled);
    }
  }

  /**
   * Points to ask for. The server keeps each bucket's min and max over equal runs of points; with a
   * whole number of buckets per pixel column, every column then shows the true min-max extent of
   * its points (with a fixed 2000, some columns miss an extreme and the band shows thin gaps).
   */
  private pointsWanted(): number {
    const css = this.plot ? this.plot.over.clientWidth : this.plotEl.clientWidth - 50; // 50: y axis, before it exists
    const px = Math.max(50, Math.round(css * window.devicePixelRatio));
    const perPixel = Math.max(1, Math.floor(TARGET_POINTS / 2 / px));
    return 2 * perPixel * px + 2;
  }

  /** Redraws from the loaded data (log scale and turning smoothing off need no fetch). */
  private render(): void {
    const { x: mode, logY, smoothing } = this.view.state;
    let hiddenNonPositive = 0;
    const positive = (v: number | null) => (v !== null && v <= 0 ? null : v);
    this.drawn = this.runs.flatMap((run): Drawn[] => {
      if (run.members) {
        const parts = run.members.flatMap((m, j) => {
          const s = this.loaded.get(memberId(run, j));
          if (!s) return [];
          const offset = mode === "rel" ? m.started : 0;
          return [{ xs: offset ? s.x.map((v) => v - offset) : s.x, ys: s.y, smoothed: smoothing > 0 ? s.smoothed : null }];
        });
        if (!parts.length) return [];
        const g = groupStats(parts, this.view.state.band);
        let { ys, smoothed, lo, hi } = g;
        if (logY) {
          ys = ys.map((v) => (v !== null && v <= 0 ? (hiddenNonPositive++, null) : v));
          smoothed = smoothed && smoothed.map(positive);
          [lo, hi] = [lo.map(positive), hi.map(positive)];
        }
        return [{ run, xs: g.xs, ys, smoothed, band: { lo, hi } }];
      }
      const s = this.loaded.get(lineId(run));
      if (!s) return [];
      const offset = mode === "rel" ? run.started : 0;
      const xs = offset ? s.x.map((v) => v - offset) : s.x;
      let ys = s.y;
      let smoothed = smoothing > 0 ? s.smoothed : null;
      if (logY) {
        // A log axis cannot show zero or negative values: leave them out, and say so.
        ys = s.y.map((v) => (v !== null && v <= 0 ? (hiddenNonPositive++, null) : v));
        smoothed = smoothed && smoothed.map(positive);
      }
      return [{ run, xs, ys, smoothed, band: null }];
    });
    this.groupsJson = this.drawn.some((d) => d.band)
      ? JSON.stringify(this.drawn.filter((d) => d.band).map((d) => ({ name: d.run.name, runs: d.run.members!.length, x: d.xs, mean: d.ys, lo: d.band!.lo, hi: d.band!.hi })))
      : "";
    this.renderNotes(hiddenNonPositive);
    const smoothed = this.drawn.some((d) => d.smoothed !== null);
    this.smoothedLast = this.drawn.flatMap((d) => {
      const i = d.smoothed ? lastFinite(d.smoothed) : -1;
      return i < 0 ? [] : [`${d.xs[i]},${d.smoothed![i]}`];
    }).join(";");

    const points = this.drawn.reduce((n, d) => n + d.xs.length, 0);
    this.plotEl.classList.remove("loading");
    this.plotEl.classList.toggle("empty", points === 0);
    this.plotEl.dataset.message = points === 0 ? (this.errors.size ? "No data" : "No points in this range") : "";

    const structure = [mode, logY, smoothed, this.drawn.map((d) => lineId(d.run) + (d.band ? "+band" : "")).join(",")].join("|");
    const data = alignedData(this.drawn);
    if (this.plot && structure === this.structure) {
      this.plot.setData(data, !this.zoom);
    } else {
      this.plot?.destroy();
      this.structure = structure;
      this.plot = new uPlot(this.options(mode, logY, smoothed), data, this.plotEl);
    }
    if (this.zoom) this.plot.setScale("x", { min: this.zoom[0], max: this.zoom[1] });
    this.points = points;
    this.renderLegend(null);
  }

  private options(mode: XMode, logY: boolean, smoothed: boolean): uPlot.Options {
    const series: uPlot.Series[] = [{ label: mode }];
    const bands: uPlot.Band[] = [];
    for (const d of this.drawn) {
      series.push({
        label: d.run.name,
        stroke: smoothed ? withAlpha(d.run.color, 0.25) : d.run.color,
        width: smoothed ? 1 : 1.5,
        dash: d.run.dash,
        spanGaps: false,
        ...(smoothed ? { points: { show: false } } : {}),
      });
      if (smoothed) series.push({ label: `${d.run.name} (smoothed)`, stroke: d.run.color, width: 1.75, dash: d.run.dash, spanGaps: false, points: { show: false } });
      if (d.band) {
        // The band's edges, faint, and the fill between them (uPlot fills from the upper series down to the lower).
        const edge = { stroke: withAlpha(d.run.color, 0.3), width: 0.5, spanGaps: false, points: { show: false } };
        series.push({ label: `${d.run.name} (low)`, ...edge }, { label: `${d.run.name} (high)`, ...edge });
        bands.push({ series: [series.length - 1, series.length - 2], fill: withAlpha(d.run.color, 0.15) });
      }
    }
    const axisStyle = { stroke: "#5b6472", font: "11px system-ui, sans-serif", grid: { stroke: "#eceef2", width: 1 }, ticks: { stroke: "#dfe2e7", width: 1, size: 4 } };
    const xAxis: uPlot.Axis = { ...axisStyle };
    if (mode === "rel") {
      xAxis.values = (_u, splits) => splits.map((v) => (v == null ? "" : fmtRelTick(v)));
      xAxis.incrs = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
    } else if (mode !== "time") xAxis.values = (_u, splits) => splits.map(tick);
    const yAxis: uPlot.Axis = {
      ...axisStyle,
      values: (_u, splits) => splits.map(tick),
      // Wide enough for the longest tick label, and no wider: charts in a grid should line up loosely.
      size: (_u, values) => Math.max(34, 12 + 6.5 * Math.max(0, ...(values ?? []).map((v) => String(v).length))),
    };
    return {
      width: this.plotEl.clientWidth || 400,
      height: HEIGHT,
      legend: { show: false },
      cursor: {
        sync: {
          key: this.syncKey,
          // Share the hover position only: zooming one chart should not zoom the others.
          filters: { pub: (type) => type === "mousemove" || type === "mouseleave" || type === "mouseenter" },
        },
        drag: { x: true, y: false, setScale: false },
        bind: { dblclick: () => () => (this.resetZoom(), null) },
        points: { size: 6 },
      },
      scales: {
        // A key logged once (a test metric) gets a small range around its x instead of uPlot's degenerate one.
        x: { time: mode === "time", range: (u, min, max) => aroundSingleX(u, mode) ?? (min === max ? [min - 1, max + 1] : [min, max]) },
        y: logY ? { distr: 3, log: 10 } : {},
      },
      axes: [xAxis, yAxis],
      series,
      bands,
      hooks: {
        setScale: [(u, key) => void (key === "x" && (this.el.dataset.xRange = `${u.scales.x.min},${u.scales.x.max}`))],
        setSelect: [
          (u) => {
            if (u.select.width > 3) {
              this.zoomTo(u.posToVal(u.select.left, "x"), u.posToVal(u.select.left + u.select.width, "x"), true);
            }
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          },
        ],
        setCursor: [(u) => this.renderLegend(u.cursor.left !== undefined && u.cursor.left >= 0 ? u.posToVal(u.cursor.left, "x") : null)],
        draw: [
          () => {
            // Set once uPlot has really drawn, so tests and benchmarks measure the drawing too.
            if (!this.pendingDraw) return;
            this.pendingDraw = false;
            this.el.dataset.points = String(this.points);
            if (this.smoothedLast) this.el.dataset.smoothedLast = this.smoothedLast;
            else delete this.el.dataset.smoothedLast;
            if (this.groupsJson) this.el.dataset.groups = this.groupsJson;
            else delete this.el.dataset.groups;
            this.el.dataset.draws = String(++this.draws);
          },
        ],
      },
      plugins: [
        zoomPlugin({ bounds: () => this.full, change: (min, max, final) => this.zoomTo(min, max, final) }),
        ...(this.marks ? [this.marks.plugin(() => mode)] : []),
      ],
    };
  }

  /** Shows [min, max]; fetches it again once the gesture is over, unless all points are already here. */
  private zoomTo(min: number, max: number, final: boolean): void {
    if (!(max > min)) return;
    if (this.full && min <= this.full[0] && max >= this.full[1]) {
      if (final) this.resetZoom();
      return;
    }
    this.zoom = [min, max];
    this.el.dataset.zoomed = `${min},${max}`;
    this.plot?.setScale("x", { min, max });
    if (final && (this.loadedRange || !this.fullComplete)) this.refetchSoon();
  }

  private resetZoom(): void {
    this.zoom = null;
    delete this.el.dataset.zoomed;
    if (this.full) this.plot?.setScale("x", { min: this.full[0], max: this.full[1] });
    if (this.loadedRange || !this.full) this.refetchSoon();
  }

  private renderNotes(hiddenNonPositive: number): void {
    const notes: (HTMLElement | string)[] = [];
    const nonfinite = [...this.loaded.values()].reduce((n, s) => n + s.nonfinite, 0);
    if (nonfinite > 0) notes.push(h("span", { class: "note warn", title: "NaN or ±inf: drawn as gaps" }, `${fmtInt(nonfinite)} non-finite value${nonfinite === 1 ? "" : "s"}`));
    if (hiddenNonPositive > 0) notes.push(h("span", { class: "note", title: "A log axis cannot show them" }, `${fmtInt(hiddenNonPositive)} ≤ 0 hidden`));
    const series = [...this.loaded.values()];
    if (series.some((s) => s.downsampled)) {
      const sent = series.reduce((n, s) => n + s.x.length, 0);
      const inRange = series.reduce((n, s) => n + s.in_range, 0);
      notes.push(h("span", { class: "note muted", title: `${fmtInt(sent)} of ${fmtInt(inRange)} points drawn: each bucket's min and max. Zoom in for more.` }, `${fmtTick(inRange)} pts`));
    }
    for (const [id, msg] of this.errors) {
      const run = this.runs.find((r) => lineId(r) === id);
      notes.push(h("span", { class: "note error", title: msg }, this.runs.length > 1 ? `${run?.name}: ${msg}` : msg));
    }
    replace(this.notesEl, notes);
  }

  /** The read-out under the chart: x at the cursor and each run's value there (the last values otherwise). */
  private renderLegend(x: number | null): void {
    const mode = this.view.state.x;
    const items = this.drawn.map((d) => {
      const i = x === null ? lastFinite(d.ys) : nearest(d.xs, x);
      const raw = i < 0 ? undefined : d.ys[i];
      const sm = d.smoothed && i >= 0 ? d.smoothed[i] : undefined;
      const value = d.smoothed ? fmtValue(sm) : fmtValue(raw);
      return h("span", { class: "legend-item" },
        h("i", { class: d.run.dash ? "swatch line" : "swatch", style: { background: swatchOf(d.run) } }),
        this.runs.length > 1 || d.band ? h("span", { class: "legend-name" }, d.run.name) : null,
        h("b", { class: "num" }, value),
        d.smoothed ? h("span", { class: "muted num at", title: "raw value" }, `(${fmtValue(raw)})`) : null,
        x === null && i >= 0 ? h("span", { class: "muted at" }, `@ ${fmtX(d.xs[i], mode)}`) : null,
      );
    });
    const head = x === null ? h("span", { class: "legend-x muted" }, "last") : h("span", { class: "legend-x" }, `${xName(mode)} ${fmtX(x, mode)}`);
    replace(this.legendEl, head, items);
  }

  /** The chart as a PNG on white, with its key and run names, as a download. */
  private downloadPng(): void {
    const u = this.plot;
    if (!u) return;
    const src = u.ctx.canvas;
    const ratio = src.width / u.width;
    const head = 26 * ratio;
    const out = document.createElement("canvas");
    out.width = src.width;
    out.height = src.height + head;
    const ctx = out.getContext("2d")!;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.font = `600 ${13 * ratio}px system-ui, sans-serif`;
    ctx.fillStyle = "#1f2933";
    ctx.textBaseline = "middle";
    ctx.fillText(this.key, 8 * ratio, head / 2);
    let x = 16 * ratio + ctx.measureText(this.key).width;
    ctx.font = `${11 * ratio}px system-ui, sans-serif`;
    for (const d of this.drawn) {
      if (this.runs.length < 2 && !d.band) break;
      ctx.fillStyle = d.run.color;
      ctx.fillRect(x, head / 2 - 4 * ratio, 8 * ratio, 8 * ratio);
      ctx.fillStyle = "#1f2933";
      ctx.fillText(d.run.name, x + 12 * ratio, head / 2);
      x += 24 * ratio + ctx.measureText(d.run.name).width;
    }
    ctx.drawImage(src, 0, head);
    out.toBlob((blob) => {
      if (!blob) return;
      const a = h("a", { href: URL.createObjectURL(blob), download: `${this.key.replace(/[^\w.-]+/g, "_")}.png` });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    }, "image/png");
  }

  destroy(): void {
    this.seq++;
    this.unlisten();
    this.resize.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}

/** A line's identity within a chart: its run, and its key where the chart overlays several. */
function lineId(line: ChartRun): string {
  return line.key ? `${line.id}\n${line.key}` : line.id;
}

/** Where a group's line keeps its `j`th run's series. */
function memberId(line: ChartRun, j: number): string {
  return `${lineId(line)}\n#${j}`;
}

interface Part {
  xs: number[];
  ys: (number | null)[];
  smoothed: (number | null)[] | null;
}

/**
 * A group's line: at each x any of its runs logged (the union; a sweep's runs log the same steps), the
 * mean of the runs with a finite value there, nothing interpolated; the band is their minimum to
 * maximum, or the mean ± the sample standard deviation (0 for one run). A run's repeated x counts once
 * per point. Smoothed curves are averaged the same way.
 */
export function groupStats(parts: Part[], band: "minmax" | "std") {
  const at = new Map<number, { ys: number[]; sm: number[] }>();
  for (const p of parts) {
    p.xs.forEach((x, i) => {
      let cell = at.get(x);
      if (!cell) at.set(x, (cell = { ys: [], sm: [] }));
      const y = p.ys[i];
      if (y !== null && Number.isFinite(y)) cell.ys.push(y);
      const s = p.smoothed?.[i];
      if (s !== null && s !== undefined && Number.isFinite(s)) cell.sm.push(s);
    });
  }
  const xs = [...at.keys()].sort((a, b) => a - b);
  const mean = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : null);
  const ys: (number | null)[] = [];
  const lo: (number | null)[] = [];
  const hi: (number | null)[] = [];
  const smoothed: (number | null)[] | null = parts.some((p) => p.smoothed) ? [] : null;
  for (const x of xs) {
    const { ys: v, sm } = at.get(x)!;
    const m = mean(v);
    ys.push(m);
    smoothed?.push(mean(sm));
    if (m === null) {
      lo.push(null);
      hi.push(null);
    } else if (band === "minmax") {
      lo.push(Math.min(...v));
      hi.push(Math.max(...v));
    } else {
      const sd = v.length > 1 ? Math.sqrt(v.reduce((a, y) => a + (y - m) ** 2, 0) / (v.length - 1)) : 0;
      lo.push(m - sd);
      hi.push(m + sd);
    }
  }
  return { xs, ys, smoothed, lo, hi };
}

/** A legend swatch: the line's colour, in dashes where the line is dashed. */
function swatchOf(line: ChartRun): string {
  if (!line.dash?.length) return line.color;
  const [on, off] = line.dash;
  return `repeating-linear-gradient(90deg, ${line.color} 0 ${on}px, transparent ${on}px ${on + off}px)`;
}

/**
 * The x range of a chart whose lines all sit at one x (a test metric logged once): around it, so the
 * point is drawn in the middle of a readable axis. uPlot itself pads a lone x oddly (a day of wall time
 * after it; nearly nothing around step 0).
 */
function aroundSingleX(u: uPlot, mode: XMode): uPlot.Range.MinMax | null {
  const xs = u.data[0];
  if (!xs.length || xs[0] !== xs[xs.length - 1]) return null;
  const x = xs[0];
  const pad = mode === "time" ? 60 : Math.max(1, Math.abs(x) * 0.05);
  return [x - pad, x + pad];
}

/** uPlot's data: one x array, then each run's raw (and smoothed) y. Runs' x values are merged. */
function alignedData(drawn: Drawn[]): uPlot.AlignedData {
  const tables = drawn.map((d) => [d.xs, d.ys, ...(d.smoothed ? [d.smoothed] : []), ...(d.band ? [d.band.lo, d.band.hi] : [])] as uPlot.AlignedData);
  if (tables.length === 0) return [[]];
  if (tables.length === 1) return tables[0];
  // uPlot.join keys rows by x value; it needs each run's x strictly increasing (an epoch axis of
  // per-step values repeats x). Otherwise interleave the rows, which draws the same lines.
  if (tables.every((t) => strictlyIncreasing(t[0] as number[]))) return uPlot.join(tables);
  return interleave(tables);
}

function interleave(tables: uPlot.AlignedData[]): uPlot.AlignedData {
  const rows: [number, number, number][] = [];
  tables.forEach((t, ti) => (t[0] as number[]).forEach((x, i) => rows.push([x, ti, i])));
  rows.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  const xs = rows.map((r) => r[0]);
  const out: (number | null | undefined)[][] = [];
  tables.forEach((t, ti) => {
    for (let s = 1; s < t.length; s++) {
      const col = t[s] as (number | null)[];
      out.push(rows.map(([, rt, i]) => (rt === ti ? col[i] : undefined)));
    }
  });
  return [xs, ...out] as uPlot.AlignedData;
}

function strictlyIncreasing(xs: number[]): boolean {
  for (let i = 1; i < xs.length; i++) if (!(xs[i] > xs[i - 1])) return false;
  return true;
}

function extent(drawn: Drawn[]): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const d of drawn) {
    if (!d.xs.length) continue;
    lo = Math.min(lo, d.xs[0]);
    hi = Math.max(hi, d.xs[d.xs.length - 1]);
  }
  return hi >= lo ? [lo, hi] : null;
}

/** Index of the x closest to `x` in an ascending array. */
function nearest(xs: number[], x: number): number {
  if (!xs.length) return -1;
  let lo = 0;
  let hi = xs.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid;
    else hi = mid;
  }
  return Math.abs(xs[lo] - x) <= Math.abs(xs[hi] - x) ? lo : hi;
}

function lastFinite(ys: (number | null)[]): number {
  for (let i = ys.length - 1; i >= 0; i--) if (ys[i] !== null) return i;
  return -1;
}

/** uPlot leaves some splits of a log axis null (no label there). */
function tick(v: number | null): string {
  return v == null ? "" : fmtTick(v);
}

function fmtValue(v: number | null | undefined): string {
  if (v === undefined) return "–";
  return v === null ? "non-finite" : fmtNum(v);
}

function xName(mode: XMode): string {
  return { step: "step", epoch: "epoch", time: "", rel: "t +" }[mode];
}

function fmtX(x: number, mode: XMode): string {
  if (mode === "time") return fmtDateTime(x, true);
  if (mode === "rel") return fmtRelTick(Math.round(x));
  return mode === "step" ? fmtInt(x) : fmtNum(x, 4);
}
