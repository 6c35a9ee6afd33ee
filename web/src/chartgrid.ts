// Charts grouped by key prefix ("train/", "valid/", ...), each group a heading and a responsive grid.

import { Chart, type ChartRun } from "./chart";
import type { ChartView } from "./chartview";
import { h, replace } from "./dom";

export interface ChartSpec {
  key: string;
  runs: ChartRun[];
}

const OTHER = "other";
const SYSTEM = "system";
// The usual reading order of a training run; other prefixes follow alphabetically, then the machine's
// metrics ("system/", sampled while the run is open), "other" last.
const GROUP_ORDER = ["train", "training", "val", "valid", "validation", "eval", "test"];

export function groupOf(key: string): string {
  const slash = key.indexOf("/");
  return slash > 0 ? key.slice(0, slash) : OTHER;
}

export function groupKeys<T extends { key: string }>(items: T[]): [string, T[]][] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const g = groupOf(item.key);
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g)!.push(item);
  }
  const rank = (g: string) =>
    g === OTHER ? 1e9 : g === SYSTEM ? 1e8 : GROUP_ORDER.includes(g) ? GROUP_ORDER.indexOf(g) : GROUP_ORDER.length;
  return [...groups.entries()]
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([g, list]) => [g, list.sort((a, b) => a.key.localeCompare(b.key, undefined, { numeric: true }))]);
}

export class ChartGrid {
  readonly el: HTMLDivElement = h("div", { class: "chart-groups" });
  private charts = new Map<string, Chart>();

  constructor(
    private readonly view: ChartView,
    private readonly signal: AbortSignal,
    private readonly syncKey: string,
  ) {
    // uPlot keeps window listeners and a cursor-sync registry: leaving the page must destroy the charts.
    signal.addEventListener("abort", () => this.destroy(), { once: true });
  }

  /**
   * Shows a chart per spec. Charts already shown for the same key and runs are kept as they are
   * (zoom included), so a live run that logs a new key only adds that chart. New charts start
   * fetching at once; the browser sends 6 requests at a time and queues the rest.
   */
  show(specs: ChartSpec[], emptyMessage = "Nothing logged yet."): void {
    const previous = this.charts;
    this.charts = new Map();
    const fresh: Chart[] = [];
    for (const spec of specs) {
      const runsKey = spec.runs.map((r) => r.id).join(",");
      let chart = previous.get(spec.key);
      if (chart && chart.runIds !== runsKey) chart = undefined;
      if (!chart) {
        chart = new Chart(spec.key, spec.runs, this.view, this.signal, this.syncKey);
        fresh.push(chart);
      }
      previous.delete(spec.key);
      this.charts.set(spec.key, chart);
    }
    for (const chart of previous.values()) chart.destroy();

    if (!specs.length) {
      replace(this.el, h("p", { class: "empty-note" }, emptyMessage));
      return;
    }
    const open = new Map([...this.el.querySelectorAll<HTMLDetailsElement>("details.chart-group")].map((d) => [d.dataset.group, d.open]));
    const sections = groupKeys(specs).map(([group, list]) =>
      h("details", { class: "chart-group", open: open.get(group) ?? true, dataset: { group } },
        h("summary", null, h("span", { class: "group-name" }, group), h("span", { class: "count" }, String(list.length))),
        h("div", { class: "chart-grid" }, list.map((spec) => this.charts.get(spec.key)!.el)),
      ),
    );
    replace(this.el, sections);
    // Attached before loading, so each chart knows its width when it first draws.
    for (const chart of fresh) void chart.load();
  }

  has(key: string): boolean {
    return this.charts.has(key);
  }

  /** Fetches these keys again (live updates); each chart keeps its zoom. */
  refresh(keys: Iterable<string>): void {
    for (const key of keys) void this.charts.get(key)?.load();
  }

  destroy(): void {
    for (const chart of this.charts.values()) chart.destroy();
    this.charts.clear();
  }
}
