// A page's charts, in sections: a metric on several splits in one chart (train/loss with valid/loss,
// while the toolbar overlays splits), the other keys by prefix ("train/", "layer3/", ...), keys without
// a prefix, then the machine's metrics ("system/") in a section of their own, closed until opened.
// A chart is made, fetched and drawn only once it scrolls near the screen; until then it is a
// placeholder of its size. A run of a thousand keys opens as fast as one of ten.

import { Chart, type ChartRun } from "./chart";
import type { ChartView } from "./chartview";
import { splitStyle } from "./colors";
import type { EventMarks } from "./eventmarks";
import { h, replace } from "./dom";
import { compareKeys as byKey, fmtInt } from "./format";
import { keyMatcher } from "./keyfilter";

export interface ChartSpec {
  key: string;
  /** The runs that logged the key, in the page's colours. */
  runs: ChartRun[];
  /** The data split the key's first part names (the API's `split`); keys differing only by it share a chart. */
  split: string | null;
}

export interface GridOptions {
  /** How overlaid splits are told apart: each its colour and dash (one run), or dashes in the runs' colours. */
  colorBy: "split" | "run";
  /** The key filter to start with. */
  filter?: string;
  /** Told of every change of the filter, to keep it in the address. */
  onFilter?: (filter: string) => void;
  /** A run's ledger events, marked on the charts they apply to (loss, accuracy). */
  marks?: EventMarks;
}

/** One chart: one key, or one metric on several splits. */
interface Panel {
  /** What the chart is called and its `data-key`: the key, or "{train,valid}/loss". */
  id: string;
  /** Its keys, split order. */
  members: ChartSpec[];
  group: string;
}

interface Entry {
  panel: Panel;
  /** Lines and styles: a chart whose lines change is another chart. */
  signature: string;
  lines: ChartRun[];
  /** The placeholder until the chart is made, then the chart's element. */
  el: HTMLElement;
  chart: Chart | null;
}

const OTHER = "other";
const SYSTEM = "system";
/** The section of charts that overlay splits. */
const SPLITS = "splits";
// The usual reading order of a training run; other prefixes follow alphabetically, then keys without
// a prefix, then the machine's metrics ("system/", sampled while the run is open).
const GROUP_ORDER = ["train", "training", "val", "valid", "validation", "eval", "test"];
const SPLIT_ORDER = ["train", "valid", "val", "eval", "test"];
const SYSTEM_OPEN_KEY = "epochal.systemOpen";
/** How far beyond the screen charts are made: a screen's worth of scrolling is already drawn. */
const AHEAD = "600px 0px";

export function groupOf(key: string): string {
  const slash = key.indexOf("/");
  return slash > 0 ? key.slice(0, slash) : OTHER;
}

function rank(group: string): number {
  if (group === SPLITS) return -1;
  if (group === SYSTEM) return 1e9;
  if (group === OTHER) return 1e8;
  return GROUP_ORDER.includes(group) ? GROUP_ORDER.indexOf(group) : GROUP_ORDER.length;
}


/** The charts for `specs`: with `overlay`, keys that differ only by their split share one. */
export function panelsOf(specs: ChartSpec[], overlay: boolean): Panel[] {
  const bySuffix = new Map<string, ChartSpec[]>();
  if (overlay) {
    for (const spec of specs) {
      if (!spec.split) continue;
      const suffix = spec.key.slice(spec.split.length + 1);
      if (!bySuffix.has(suffix)) bySuffix.set(suffix, []);
      bySuffix.get(suffix)!.push(spec);
    }
  }
  const splitRank = (s: string | null) => {
    const i = SPLIT_ORDER.indexOf((s ?? "").toLowerCase());
    return i < 0 ? SPLIT_ORDER.length : i;
  };
  const panels: Panel[] = [];
  const overlaid = new Set<string>();
  for (const [suffix, members] of bySuffix) {
    if (members.length < 2) continue;
    members.sort((a, b) => splitRank(a.split) - splitRank(b.split) || byKey(a.key, b.key));
    members.forEach((m) => overlaid.add(m.key));
    panels.push({ id: `{${members.map((m) => m.split).join(",")}}/${suffix}`, members, group: SPLITS });
  }
  for (const spec of specs) {
    if (!overlaid.has(spec.key)) panels.push({ id: spec.key, members: [spec], group: groupOf(spec.key) });
  }
  return panels.sort((a, b) => rank(a.group) - rank(b.group) || byKey(a.group, b.group) || byKey(a.id, b.id));
}

/** A chart's lines: a lone key's as the page gave them; overlaid splits named and styled by split. */
function linesOf(panel: Panel, members: ChartSpec[], colorBy: GridOptions["colorBy"]): ChartRun[] {
  if (panel.members.length === 1) return members[0].runs;
  return members.flatMap((m) => {
    const split = m.split ?? "";
    const style = splitStyle(split);
    return m.runs.map((run) => colorBy === "split"
      ? { ...run, key: m.key, name: split, color: style.color, dash: style.dash }
      : { ...run, key: m.key, name: `${run.name} ${split}`, dash: style.dash });
  });
}

function placeholder(id: string, keys: string[]): HTMLElement {
  // The chart's own parts, empty: the placeholder takes the chart's height, so nothing jumps.
  return h("div", { class: "chart placeholder", dataset: { key: id, keys: keys.join(" ") } },
    h("div", { class: "chart-head" }, h("span", { class: "chart-title", title: keys.join("\n") }, id)),
    h("div", { class: "chart-plot" }),
    h("div", { class: "chart-legend" }),
  );
}

export class ChartGrid {
  readonly el: HTMLDivElement = h("div", { class: "chart-groups" });
  /** The key filter's box and its count of matching keys, for the page's toolbar. */
  readonly filterEl: HTMLElement;
  private readonly filterInput: HTMLInputElement;
  private readonly filterCount = h("span", { class: "filter-count muted num" });
  private specs: ChartSpec[] = [];
  private specKeys = new Set<string>();
  private emptyMessage = "";
  private entries = new Map<string, Entry>();
  private readonly waiting = new Map<Element, Entry>();
  private readonly observer: IntersectionObserver;

  constructor(
    private readonly view: ChartView,
    private readonly signal: AbortSignal,
    private readonly syncKey: string,
    private readonly options: GridOptions,
  ) {
    this.observer = new IntersectionObserver((seen) => {
      for (const s of seen) {
        const entry = s.isIntersecting ? this.waiting.get(s.target) : undefined;
        if (entry) this.make(entry);
      }
    }, { rootMargin: AHEAD });
    this.filterInput = h("input", {
      type: "search",
      class: "key-filter",
      value: options.filter ?? "",
      placeholder: "filter keys: loss, valid/*",
      "aria-label": "Filter the charts by key",
      title: "A part of the key (loss), a glob (valid/*, *acc*), or several, comma-separated",
    });
    let timer: number | undefined;
    this.filterInput.addEventListener("input", () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(() => this.filterChanged(), 120);
    });
    this.filterEl = h("label", { class: "tool key-filter-tool" }, this.filterInput, this.filterCount);
    const unlisten = view.onChange((changed) => changed.includes("overlay") && this.layout());
    // uPlot keeps window listeners and a cursor-sync registry: leaving the page must destroy the charts.
    signal.addEventListener("abort", () => (unlisten(), this.destroy()), { once: true });
  }

  /**
   * Shows a chart per key (or per metric on several splits). Charts already made for the same keys
   * and runs are kept as they are (zoom included), so a live run that logs a new key only adds that
   * chart; the others wait as placeholders until they scroll into view.
   */
  show(specs: ChartSpec[], emptyMessage = "Nothing logged yet."): void {
    this.specs = specs;
    this.specKeys = new Set(specs.map((s) => s.key));
    this.emptyMessage = emptyMessage;
    this.layout();
  }

  /** Whether `key` is one of the keys shown (or filtered out). */
  has(key: string): boolean {
    return this.specKeys.has(key);
  }

  /** Fetches these keys again (live updates); each chart keeps its zoom. Charts not made yet fetch when they are. */
  refresh(keys: Iterable<string>): void {
    const wanted = new Set(keys);
    for (const entry of this.entries.values()) {
      if (entry.chart && entry.lines.some((l) => wanted.has(l.key ?? entry.panel.id))) void entry.chart.load();
    }
  }

  /** Brings the chart of `key` into view: clears a filter that hides it and opens its section. */
  reveal(key: string): void {
    let entry = this.find(key);
    if (!entry && this.filterInput.value) {
      this.filterInput.value = "";
      this.filterChanged();
      entry = this.find(key);
    }
    if (!entry) return;
    const details = entry.el.closest("details");
    if (details) details.open = true;
    entry.el.scrollIntoView({ behavior: "smooth", block: "center" });
  }

  private find(key: string): Entry | undefined {
    return [...this.entries.values()].find((e) => e.lines.some((l) => (l.key ?? e.panel.id) === key));
  }

  private filterChanged(): void {
    this.options.onFilter?.(this.filterInput.value.trim());
    this.layout();
    // Typed far down a long page, the answer would be above the screen: bring the charts' top up.
    if (this.el.getBoundingClientRect().top < 0) this.el.scrollIntoView({ block: "start" });
  }

  /** Lays the sections out again: after new keys, a new filter, or overlaying switched on or off. */
  private layout(): void {
    const matches = keyMatcher(this.filterInput.value);
    const panels = panelsOf(this.specs, this.view.state.overlay);
    const previous = this.entries;
    this.entries = new Map();
    const sections = new Map<string, { total: number; shown: Entry[]; splits: Set<string> }>();
    for (const panel of panels) {
      if (!sections.has(panel.group)) sections.set(panel.group, { total: 0, shown: [], splits: new Set() });
      const section = sections.get(panel.group)!;
      section.total += panel.members.length;
      const members = matches ? panel.members.filter((m) => matches(m.key)) : panel.members;
      if (!members.length) continue;
      members.forEach((m) => m.split && section.splits.add(m.split));
      const lines = linesOf(panel, members, this.options.colorBy);
      const signature = lines.map((l) => [l.id, l.key, l.name, l.color, l.dash?.join(" ")].join("\t")).join("\n");
      let entry = previous.get(panel.id);
      if (entry && entry.signature === signature) previous.delete(panel.id);
      else {
        entry = { panel, signature, lines, el: placeholder(panel.id, [...new Set(lines.map((l) => l.key ?? panel.id))]), chart: null };
        this.waiting.set(entry.el, entry);
        this.observer.observe(entry.el);
      }
      this.entries.set(panel.id, entry);
      section.shown.push(entry);
    }
    for (const entry of previous.values()) this.drop(entry);

    const shownKeys = [...sections.values()].reduce((n, s) => n + s.shown.reduce((k, e) => k + new Set(e.lines.map((l) => l.key)).size, 0), 0);
    this.filterCount.textContent = matches ? `${fmtInt(shownKeys)} of ${fmtInt(this.specs.length)} keys` : "";
    if (!this.specs.length) {
      replace(this.el, h("p", { class: "empty-note" }, this.emptyMessage));
      return;
    }
    if (!shownKeys) {
      replace(this.el, h("p", { class: "empty-note" }, `No key matches “${this.filterInput.value.trim()}”.`));
      return;
    }
    const open = new Map([...this.el.querySelectorAll<HTMLDetailsElement>("details.chart-group")].map((d) => [d.dataset.group, d.open]));
    replace(this.el, [...sections].filter(([, s]) => s.shown.length).map(([group, s]) => {
      const keys = s.shown.reduce((n, e) => n + new Set(e.lines.map((l) => l.key)).size, 0);
      const count = h("span", { class: "count", title: matches ? "keys that match the filter, of the section's keys" : "keys" },
        matches ? `${fmtInt(keys)} of ${fmtInt(s.total)}` : fmtInt(s.total));
      if (group === SYSTEM) return this.systemSection(s.shown, count, open.get(group), !!matches);
      const name = group === SPLITS ? SPLIT_ORDER.filter((x) => [...s.splits].some((y) => y.toLowerCase() === x)).join(" · ") || "splits" : group;
      return h("details", { class: "chart-group", open: open.get(group) ?? true, dataset: { group } },
        h("summary", null, h("span", { class: "group-name" }, name), count,
          group === SPLITS ? h("span", { class: "group-hint muted" }, "each metric on its splits together") : null),
        h("div", { class: "chart-grid" }, s.shown.map((e) => e.el)),
      );
    }));
  }

  /**
   * The machine's metrics: closed until opened (remembered for the next run), open while a filter
   * finds keys there; a GPU's keys under a heading of their own.
   */
  private systemSection(shown: Entry[], count: HTMLElement, wasOpen: boolean | undefined, filtered: boolean): HTMLElement {
    const parts = new Map<string, Entry[]>();
    for (const e of shown) {
      const rest = e.panel.id.slice(SYSTEM.length + 1);
      const part = rest.includes("/") ? rest.slice(0, rest.indexOf("/")) : "host";
      if (!parts.has(part)) parts.set(part, []);
      parts.get(part)!.push(e);
    }
    const ordered = [...parts].sort(([a], [b]) => (a === "host" ? -1 : b === "host" ? 1 : byKey(a, b)));
    const summary = h("summary", null, h("span", { class: "group-name" }, "System"), count,
      h("span", { class: "group-hint muted" }, "the machine and the training process, sampled while the run was open"));
    // Only the reader's own clicks are remembered, not the filter opening it.
    summary.addEventListener("click", () => localStorage.setItem(SYSTEM_OPEN_KEY, String(!details.open)));
    const details = h("details", {
      class: "chart-group system-group",
      open: filtered || (wasOpen ?? localStorage.getItem(SYSTEM_OPEN_KEY) === "true"),
      dataset: { group: SYSTEM },
    }, summary, ordered.map(([part, entries]) => [
      ordered.length > 1 ? h("h3", { class: "subgroup-name" }, part) : null,
      h("div", { class: "chart-grid" }, entries.map((e) => e.el)),
    ]));
    return details;
  }

  private make(entry: Entry): void {
    this.observer.unobserve(entry.el);
    this.waiting.delete(entry.el);
    if (this.signal.aborted) return;
    const marks = this.options.marks?.applies(entry.panel.id) ? this.options.marks : null;
    const chart = new Chart(entry.panel.id, entry.lines, this.view, this.signal, this.syncKey, marks);
    entry.el.replaceWith(chart.el);
    entry.el = chart.el;
    entry.chart = chart;
    // Attached before loading, so the chart knows its width when it first draws.
    void chart.load();
  }

  private drop(entry: Entry): void {
    this.observer.unobserve(entry.el);
    this.waiting.delete(entry.el);
    entry.chart?.destroy();
  }

  destroy(): void {
    this.observer.disconnect();
    for (const entry of this.entries.values()) entry.chart?.destroy();
    this.entries.clear();
    this.waiting.clear();
  }
}
