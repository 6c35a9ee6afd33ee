// The compare page: the same keys overlaid across runs, their config side by side, and a
// parallel-coordinates view of config against a metric.

import { api, errorMessage, type RunDetail } from "../api";
import type { ChartRun } from "../chart";
import { ChartGrid } from "../chartgrid";
import { ChartView, chartToolbar } from "../chartview";
import { runColor } from "../colors";
import { h, replace } from "../dom";
import { fmtConfig, fmtConfigShort } from "../format";
import { poll } from "../live";
import type { PageContext } from "../main";
import { parallelCoords, varyingKeys, type AxisScales } from "../parallel";
import { href, replaceRoute, type Band } from "../router";
import { errorBox, showBanner, statusBadge } from "../ui";

const SHARED = "";
const ALL = "*";

/** The compare page's grouping: the config keys whose values make a group (none: a line per run), and the band. */
export interface Grouping {
  keys: string[];
  band: Band;
}

export function mountCompare(root: HTMLElement, ctx: PageContext, ids: string[], key: string | null, filter = "", grouping: Grouping = { keys: [], band: "minmax" }): void {
  ctx.setCrumbs(["runs", href({ page: "runs" })], "compare");
  if (!ids.length) {
    replace(root, errorBox(new Error("No runs chosen. Select two or more runs on the runs page and press Compare."), "Nothing to compare"));
    return;
  }
  replace(root, h("div", { class: "loading-note" }, `Loading ${ids.length} runs…`));
  Promise.allSettled(ids.map((id) => api.run(id, ctx.signal))).then((results) => {
    if (ctx.signal.aborted) return;
    const runs = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const failed = results.flatMap((r, i) => (r.status === "rejected" ? [`${ids[i]}: ${errorMessage(r.reason)}`] : []));
    if (!runs.length) {
      replace(root, errorBox(new Error(failed.join("; ")), "Could not load the runs"));
      return;
    }
    if (failed.length) showBanner(`Left out of the comparison: ${failed.join("; ")}`, "error");
    new ComparePage(root, ctx, runs, key, filter, grouping);
  });
}

class ComparePage {
  private readonly view = new ChartView();
  private readonly grid: ChartGrid;
  private readonly head = h("div", { class: "compare-head" });
  private readonly keySelect = h("select", { class: "key-select", title: "Which keys to chart" });
  private readonly groupTool = h("details", { class: "tool group-by" });
  private readonly bandTool = h("label", { class: "tool band-tool" });
  private readonly parallel = h("div", { class: "card" });
  private readonly configCard = h("div", { class: "card" });
  private onlyDiff = false;
  private pcMetric = "";
  private pcWhich: "last" | "best" = "best";
  /** Parallel coordinates' axes switched between log and linear by the reader. */
  private readonly pcScales: AxisScales = new Map();

  constructor(
    root: HTMLElement,
    private readonly ctx: PageContext,
    private runs: RunDetail[],
    private key: string | null,
    private filter: string,
    private grouping: Grouping,
  ) {
    this.view.set({ band: grouping.band });
    ctx.setCrumbs(["runs", href({ page: "runs" })], `compare ${runs.length} runs`);
    this.grid = new ChartGrid(this.view, ctx.signal, "compare", {
      colorBy: "run",
      filter,
      onFilter: (text) => ((this.filter = text), this.keepRoute()),
    });
    this.keySelect.addEventListener("change", () => {
      this.key = this.keySelect.value === SHARED ? null : this.keySelect.value;
      this.keepRoute();
      this.showCharts();
    });
    this.pcMetric = this.runs.find((r) => r.main_metrics.length)?.main_metrics[0] ?? "";  // the server's rule

    replace(root,
      this.head,
      h("section", { class: "charts-section" },
        h("h2", null, "Charts"),
        chartToolbar(this.view, h("label", { class: "tool" }, h("span", { class: "tool-label" }, "Keys"), this.keySelect), this.groupTool, this.bandTool, this.grid.filterEl),
        this.grid.el,
      ),
      this.parallel,
      this.configCard,
    );
    this.renderHead();
    this.renderKeySelect();
    this.renderGroupBy();
    this.showCharts();
    this.renderParallel();
    this.renderConfig();
    if (runs.some((r) => r.status === "running")) this.followLive();
    // The parallel plot is sized to its card: redraw it when the window changes width.
    const onResize = () => this.renderParallel();
    window.addEventListener("resize", onResize);
    ctx.signal.addEventListener("abort", () => window.removeEventListener("resize", onResize), { once: true });
  }

  private keepRoute(): void {
    replaceRoute({ page: "compare", runs: this.runs.map((r) => r.id), key: this.key, filter: this.filter, group: this.grouping.keys, band: this.grouping.band });
  }

  /** A line per run; grouped, a line per group of runs with equal values of the chosen keys, named by them. */
  private chartRuns(): ChartRun[] {
    const keys = this.grouping.keys.filter((k) => this.differingKeys().includes(k));
    if (!keys.length) return this.runs.map((r, i) => ({ id: r.id, name: r.name, color: runColor(i), started: r.started }));
    const groups = new Map<string, RunDetail[]>();
    for (const r of this.runs) {
      const id = JSON.stringify(keys.map((k) => r.config[k] ?? null));
      if (!groups.has(id)) groups.set(id, []);
      groups.get(id)!.push(r);
    }
    return [...groups].map(([id, runs], i) => ({
      id: `group:${id}`,
      name: `${keys.map((k) => `${k}=${k in runs[0].config ? fmtConfigShort(runs[0].config[k]) : "—"}`).join(", ")} (${runs.length} run${runs.length === 1 ? "" : "s"})`,
      color: runColor(i),
      started: runs[0].started,
      members: runs.map((r) => ({ id: r.id, started: r.started })),
    }));
  }

  /** The config keys whose values differ among the runs: the ones worth grouping by. */
  private differingKeys(): string[] {
    const keys = [...new Set(this.runs.flatMap((r) => Object.keys(r.config)))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    return keys.filter((k) => new Set(this.runs.map((r) => JSON.stringify(r.config[k] ?? null))).size > 1);
  }

  /** The "Group by" menu: a box per differing config key, and "all but seed"; the band's choice beside it. */
  private renderGroupBy(): void {
    const differing = this.differingKeys();
    const chosen = new Set(this.grouping.keys.filter((k) => differing.includes(k)));
    const set = (keys: string[]) => {
      this.grouping = { ...this.grouping, keys };
      this.keepRoute();
      this.renderGroupBy();
      this.showCharts();
    };
    const boxes = differing.map((k) => {
      const box = h("input", { type: "checkbox", value: k, checked: chosen.has(k) });
      box.addEventListener("change", () => set(differing.filter((x) => (x === k ? box.checked : chosen.has(x)))));
      return h("label", { class: "group-key" }, box, h("code", null, k));
    });
    const isSeed = (k: string) => /(^|[._/])seed$/i.test(k);
    const allBut = h("button", { type: "button", class: "mini-btn group-all-but", title: "Every config key that differs, except seeds: runs that differ only by seed become one line" }, "all but seed");
    allBut.addEventListener("click", () => set(differing.filter((k) => !isSeed(k))));
    const none = h("button", { type: "button", class: "mini-btn group-none" }, "none");
    none.addEventListener("click", () => set([]));
    const wasOpen = this.groupTool.open;
    replace(this.groupTool,
      h("summary", { class: "tool-label", title: "One line per group of runs with equal values of these config keys: their mean, and a band" },
        "Group by ", h("b", null, chosen.size ? [...chosen].join(", ") : "none")),
      h("div", { class: "group-menu" },
        differing.length ? boxes : h("p", { class: "muted" }, "These runs have the same config."),
        h("div", null, allBut, none)),
    );
    this.groupTool.open = wasOpen;

    const band = h("select", { class: "band-select", "aria-label": "Band around a group's mean" },
      h("option", { value: "minmax" }, "min–max"), h("option", { value: "std" }, "± 1 std"));
    band.value = this.grouping.band;
    band.addEventListener("change", () => {
      this.grouping = { ...this.grouping, band: band.value as Band };
      this.view.set({ band: this.grouping.band });
      this.keepRoute();
    });
    replace(this.bandTool, h("span", { class: "tool-label" }, "Band"), band);
    this.bandTool.hidden = !chosen.size;
  }

  private allKeys(): string[] {
    return [...new Set(this.runs.flatMap((r) => r.summary.map((s) => s.key)))].sort();
  }

  private sharedKeys(): string[] {
    return this.allKeys().filter((k) => this.runs.every((r) => r.summary.some((s) => s.key === k)));
  }

  private renderKeySelect(): void {
    const all = this.allKeys();
    const shared = this.sharedKeys();
    replace(this.keySelect,
      h("option", { value: SHARED }, `every shared key (${shared.length})`),
      h("option", { value: ALL }, `every key of any run (${all.length})`),
      h("optgroup", { label: "one key" }, all.map((k) => h("option", { value: k }, k))),
    );
    this.keySelect.value = this.key ?? SHARED;
  }

  private showCharts(): void {
    const runs = this.chartRuns();
    const keys = this.key === null ? this.sharedKeys() : this.key === ALL ? this.allKeys() : [this.key];
    const has = (id: string, key: string) => this.runs.some((r) => r.id === id && r.summary.some((s) => s.key === key && s.count > 0));
    // A chart draws the runs (or groups, with the runs of theirs) that have its key, in the page's colours.
    this.grid.show(keys.map((key) => ({
      key,
      runs: runs.flatMap((line) => {
        if (!line.members) return has(line.id, key) ? [line] : [];
        const members = line.members.filter((m) => has(m.id, key));
        return members.length ? [{ ...line, members }] : [];
      }),
      split: this.runs.flatMap((r) => r.summary).find((s) => s.key === key)?.split ?? null,
    })).filter((spec) => spec.runs.length > 0), this.key && this.key !== ALL ? `No run here has logged ${this.key}.` : "These runs share no key: pick one above.");
  }

  private renderHead(): void {
    const ids = this.runs.map((r) => r.id);
    replace(this.head,
      h("h1", null, `Comparing ${this.runs.length} run${this.runs.length === 1 ? "" : "s"}`),
      h("div", { class: "run-chips" }, this.runs.map((r, i) =>
        h("span", { class: "run-chip" },
          h("i", { class: "swatch", style: { background: runColor(i) } }),
          h("a", { href: href({ page: "run", id: r.id }), title: r.id }, r.name),
          statusBadge(r.status),
          this.runs.length > 1 ? h("a", {
            class: "chip-x",
            title: "Leave out of the comparison",
            href: href({ page: "compare", runs: ids.filter((x) => x !== r.id), key: this.key, filter: this.filter, group: this.grouping.keys, band: this.grouping.band }),
          }, "×") : null,
        ),
      )),
    );
  }

  private renderParallel(): void {
    const keys = this.allKeys();
    const configKeys = [...new Set(this.runs.flatMap((r) => Object.keys(r.config)))].sort();
    const metricSel = h("select", null, keys.map((k) => h("option", { value: k }, k)));
    metricSel.value = this.pcMetric;
    metricSel.addEventListener("change", () => ((this.pcMetric = metricSel.value), this.pcScales.delete("metric"), this.renderParallel()));
    const whichSel = h("select", null, h("option", { value: "best" }, "best"), h("option", { value: "last" }, "last"));
    whichSel.value = this.pcWhich;
    whichSel.addEventListener("change", () => ((this.pcWhich = whichSel.value as "last" | "best"), this.renderParallel()));

    const pcRuns = this.runs.map((r) => {
      const s = r.summary.find((x) => x.key === this.pcMetric);
      return { id: r.id, name: r.name, config: r.config, metric: s ? s[this.pcWhich] : null };
    });
    const varying = varyingKeys(pcRuns, configKeys);
    const available = (this.parallel.clientWidth || document.body.clientWidth) - 34;
    replace(this.parallel,
      h("div", { class: "card-head" },
        h("h2", null, "Config against a metric"),
        h("label", { class: "tool" }, h("span", { class: "tool-label" }, "Metric"), metricSel, whichSel),
      ),
      this.runs.length < 2 ? h("p", { class: "muted" }, "Add runs to compare their configs.")
        : !varying.length ? h("p", { class: "muted" }, "These runs have the same config: nothing to lay out.")
        : parallelCoords(pcRuns, varying, { key: this.pcMetric, which: this.pcWhich }, available, (id) => (location.hash = href({ page: "run", id })), {
          chosen: this.pcScales,
          onToggle: (axis, log) => (this.pcScales.set(axis, log), this.renderParallel()),
        }),
    );
  }

  private renderConfig(): void {
    const keys = [...new Set(this.runs.flatMap((r) => Object.keys(r.config)))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    const differs = (k: string) => new Set(this.runs.map((r) => JSON.stringify(r.config[k] ?? null))).size > 1;
    const nDiff = keys.filter(differs).length;
    const only = h("input", { type: "checkbox", checked: this.onlyDiff });
    only.addEventListener("change", () => ((this.onlyDiff = only.checked), this.renderConfig()));
    const shown = this.onlyDiff ? keys.filter(differs) : keys;
    replace(this.configCard,
      h("div", { class: "card-head" },
        h("h2", null, "Config ", h("span", { class: "count" }, `${nDiff} of ${keys.length} differ`)),
        h("label", { class: "tool" }, only, "only differences"),
      ),
      h("div", { class: "table-scroll" }, h("table", { class: "data-table config-diff" },
        h("thead", null, h("tr", null, h("th", null, "key"), this.runs.map((r, i) =>
          h("th", null, h("i", { class: "swatch", style: { background: runColor(i) } }), r.name)))),
        h("tbody", null, shown.map((k) => h("tr", { class: differs(k) ? "diff" : "" },
          h("td", null, h("code", null, k)),
          this.runs.map((r) => k in r.config
            ? h("td", { title: fmtConfig(r.config[k]) }, fmtConfigShort(r.config[k]))
            : h("td", { class: "missing" }, "—")),
        ))),
      )),
      shown.length ? null : h("p", { class: "muted" }, keys.length ? "No differences." : "No config recorded."),
    );
  }

  /** Polls running runs; redraws the charts of keys that got new points. */
  private followLive(): void {
    poll(async () => {
      const running = this.runs.filter((r) => r.status === "running");
      const fresh = await Promise.all(running.map((r) => api.run(r.id, this.ctx.signal)));
      const grown = new Set<string>();
      for (const next of fresh) {
        const i = this.runs.findIndex((r) => r.id === next.id);
        const before = new Map(this.runs[i].summary.map((s) => [s.key, s.count]));
        next.summary.forEach((s) => before.get(s.key) !== s.count && grown.add(s.key));
        this.runs[i] = next;
      }
      this.renderHead();
      const keysBefore = this.keySelect.options.length;
      this.renderKeySelect();
      if (this.keySelect.options.length !== keysBefore) this.showCharts();
      this.grid.refresh(grown);
      // Only when values moved: a redraw would drop the reader's hover.
      if (grown.size) this.renderParallel();
      return this.runs.some((r) => r.status === "running");
    }, this.ctx.signal, (err) => showBanner(`Live update failed: ${errorMessage(err)}. Retrying…`, "error", 4000));
  }
}
