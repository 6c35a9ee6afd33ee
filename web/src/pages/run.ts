// The run page: what ran where, its config, summary, checkpoints, notes and tags, and a chart per key;
// where the run recorded a sample ledger, its loss and accuracy charts mark each epoch's events, and a
// mark opens the events panel of that epoch.

import { api, ApiError, withToken, type EventKind, type RunDetail, type SummaryRow } from "../api";
import { ChartGrid, type ChartSpec } from "../chartgrid";
import { ChartView, chartToolbar } from "../chartview";
import { runColor } from "../colors";
import { configTree } from "../configtree";
import { h, replace } from "../dom";
import { EventMarks } from "../eventmarks";
import { EventsPanel } from "../events";
import { compareKeys, fmtAgo, fmtBytes, fmtDateTime, fmtDuration, fmtInt, fmtNum, fullNum } from "../format";
import { poll } from "../live";
import type { PageContext } from "../main";
import { href, replaceRoute, type LedgerState, type LedgerTab } from "../router";
import { errorBox, reportActionError, showBanner, statusBadge, tagChip } from "../ui";

export function mountRun(root: HTMLElement, ctx: PageContext, id: string, filter = "", ledger: LedgerState | null = null): void {
  ctx.setCrumbs(["runs", href({ page: "runs" })], id);
  replace(root, h("div", { class: "loading-note" }, "Loading run…"));
  api.run(id, ctx.signal).then(
    (run) => new RunPage(root, ctx, run, filter, ledger),
    (err) => ctx.signal.aborted || replace(root, errorBox(err, `Could not load run ${id}`)),
  );
}

class RunPage {
  private readonly header = h("div", { class: "run-head" });
  private readonly info = h("div", { class: "card" });
  private readonly summary = h("div", { class: "card summary-card" });
  private readonly checkpoints = h("div", { class: "card" });
  private readonly tags = h("div", { class: "tag-editor" });
  private readonly notes = h("textarea", { class: "notes", rows: 3, placeholder: "What was this run for? What did you learn?" });
  private readonly notesSave = h("button", { type: "button", class: "btn", disabled: true }, "Save notes");
  private readonly grid: ChartGrid;
  private readonly view = new ChartView();
  /** Whether the run recorded training dynamics: then the header links to their page. */
  private hasDynamics = false;
  /** The ledger's events on the charts, and the panel a mark opens (once the run is known to have a ledger). */
  private readonly marks = new EventMarks((epoch) => this.openEvents(epoch));
  private events: EventsPanel | null = null;

  constructor(
    private readonly root: HTMLElement,
    private readonly ctx: PageContext,
    private run: RunDetail,
    private filter: string,
    private ledger: LedgerState | null,
  ) {
    ctx.setCrumbs(["runs", href({ page: "runs" })], run.name);
    this.grid = new ChartGrid(this.view, ctx.signal, `run-${run.id}`, {
      colorBy: "split",
      filter,
      onFilter: (text) => {
        this.filter = text;
        this.remember();
      },
      marks: this.marks,
    });
    this.notes.value = run.notes;
    this.notes.addEventListener("input", () => (this.notesSave.disabled = this.notes.value === this.run.notes));
    this.notesSave.addEventListener("click", () => void this.saveNotes());

    replace(root,
      this.header,
      h("div", { class: "two-col" },
        this.info,
        h("div", { class: "card" }, h("h2", null, "Notes"), this.notes, h("div", { class: "row-end" }, this.notesSave)),
      ),
      h("section", { class: "charts-section" }, h("h2", null, "Charts"), chartToolbar(this.view, this.grid.filterEl), this.grid.el),
      h("div", { class: "two-col" },
        this.summary,
        h("div", { class: "card" }, h("h2", null, "Config"), configTree(run.config_tree)),
      ),
      this.checkpoints,
    );
    this.renderAll();
    this.grid.show(this.chartSpecs());
    if (run.status === "running") this.followLive();
    void this.findDynamics();
    void this.findLedger();
  }

  /** The page's state in the address: the key filter and the events panel. */
  private remember(): void {
    replaceRoute({ page: "run", id: this.run.id, filter: this.filter, ledger: this.ledger });
  }

  /** The run's sample ledger, if it recorded one: marks on the charts, and the panel (reopened from the address). */
  private async findLedger(): Promise<void> {
    let info;
    try {
      info = await api.ledger(this.run.id, this.ctx.signal);
    } catch {
      // 404: none recorded. Another error leaves the charts without marks; they are an extra.
      return;
    }
    this.marks.set(info.epochs, info.class_names);
    if (!this.events) {
      this.events = new EventsPanel(this.run.id, info, this.ctx.signal, (state) => {
        this.ledger = state;
        this.remember();
      });
      this.root.append(this.events.el);
      if (this.ledger) this.events.open(this.ledger);
    } else this.events.setInfo(info);
  }

  /** A mark's click: its epoch, on the tab the panel shows, or the first kind of event that epoch has. */
  private openEvents(epoch: number): void {
    if (!this.events) return;
    const found = this.marks.epoch(epoch);
    const kinds: EventKind[] = ["forgotten", "flips", "learned", "confidence_jumps"];
    const tab: LedgerTab = this.ledger?.tab ?? kinds.find((k) => found && found[k] > 0) ?? "confusion";
    this.events.open({ epoch, tab, cell: null, sample: null });
  }

  private async findDynamics(): Promise<void> {
    try {
      await api.dynamics(this.run.id, this.ctx.signal);
    } catch (err) {
      // 404: none recorded. Any other error shows on the dynamics page itself, so link to it anyway.
      if (!(err instanceof ApiError) || err.status === 404) return;
    }
    this.hasDynamics = true;
    this.renderHeader();
  }

  private renderAll(): void {
    this.renderHeader();
    this.renderInfo();
    this.renderSummary();
    this.renderCheckpoints();
  }

  private chartSpecs(): ChartSpec[] {
    const chartRun = { id: this.run.id, name: this.run.name, color: runColor(0), started: this.run.started };
    return this.run.summary.filter((s) => s.count > 0).map((s) => ({ key: s.key, runs: [chartRun], split: s.split }));
  }

  /** Polls the run while it runs; redraws only the keys that got new points. */
  private followLive(): void {
    poll(async () => {
      const next = await api.run(this.run.id, this.ctx.signal);
      const before = new Map(this.run.summary.map((s) => [s.key, s.count]));
      const grown = next.summary.filter((s) => before.has(s.key) && before.get(s.key) !== s.count).map((s) => s.key);
      const added = next.summary.some((s) => s.count > 0 && !this.grid.has(s.key));
      const newEpoch = next.epochs !== this.run.epochs;
      // Keep what the user is typing: only take the server's notes when the box is unchanged.
      if (this.notes.value === this.run.notes) this.notes.value = next.notes;
      this.run = next;
      this.renderAll();
      if (added) this.grid.show(this.chartSpecs());
      this.grid.refresh(grown);
      if (newEpoch || next.status !== "running") void this.findLedger();
      // One last refresh has just happened when the run stops: then stop polling.
      return next.status === "running";
    }, this.ctx.signal, (err) => showBanner(`Live update failed: ${err instanceof Error ? err.message : err}. Retrying…`, "error", 4000));
  }

  private renderHeader(): void {
    const r = this.run;
    this.renderTags();
    replace(this.header,
      h("div", { class: "title-row" },
        h("h1", null, r.name),
        statusBadge(r.status),
        h("span", { class: "pill" }, r.project),
        h("code", { class: "run-id", title: "Run id" }, r.id),
        h("span", { class: "spacer" }),
        this.hasDynamics ? h("a", { class: "btn dynamics-link", href: href({ page: "dynamics", id: r.id }) }, "Training dynamics") : null,
        h("button", { type: "button", class: "btn danger", onclick: () => void this.deleteRun() }, "Delete run"),
      ),
      this.tags,
    );
  }

  private renderTags(): void {
    const input = h("input", { type: "text", class: "tag-input", placeholder: "add tag…", "aria-label": "Add a tag" });
    input.addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      const tag = input.value.trim();
      if (tag && !this.run.tags.includes(tag)) void this.saveTags([...this.run.tags, tag]);
      input.value = "";
    });
    replace(this.tags,
      this.run.tags.map((t) => tagChip(t, () => void this.saveTags(this.run.tags.filter((x) => x !== t)))),
      input,
    );
  }

  private renderInfo(): void {
    const r = this.run;
    const rows: [string, Node | string][] = [
      ["Started", fmtDateTime(r.started, true)],
      [r.status === "running" ? "Heartbeat" : "Ended", r.status === "running" ? fmtAgo(r.heartbeat) : fmtDateTime(r.ended, true)],
      ["Duration", fmtDuration(r.duration)],
      ["Steps / epochs", `${fmtInt(r.steps)} / ${fmtInt(r.epochs)}`],
      ["Resumed", r.segment > 0 ? `${r.segment} time${r.segment === 1 ? "" : "s"}` : "never"],
      ["Host / pid", `${r.host} / ${r.pid}`],
      ...(r.world_size > 1
        ? [["Ranks", `${r.world_size}: ${r.ranks.map((p) => `${p.host} / ${p.pid}`).join(", ")}`] as [string, string]]
        : []),
      ["Python / torch", `${r.python} / ${r.torch ?? "–"}`],
      ["Git commit", r.git_commit ? h("code", null, r.git_commit.slice(0, 12)) : "–"],
      ["Command", h("code", { class: "command" }, r.command || "–")],
    ];
    replace(this.info, h("h2", null, "Run"), h("dl", { class: "kv" }, rows.map(([k, v]) => [h("dt", null, k), h("dd", { class: k === "Command" ? "wide" : "" }, v)])));
  }

  private renderSummary(): void {
    const rows = [...this.run.summary].sort((a, b) => compareKeys(a.key, b.key));
    replace(this.summary, h("h2", null, "Summary"),
      rows.length ? h("table", { class: "data-table" },
        h("thead", null, h("tr", null, ["key", "last", "best", "min", "max", "count", "last step"].map((c, i) => h("th", { class: i ? "num" : "" }, c)))),
        h("tbody", null, rows.map((s) => summaryRow(s, () => this.grid.reveal(s.key)))),
      ) : h("p", { class: "muted" }, "Nothing logged yet."),
    );
  }

  private renderCheckpoints(): void {
    const cps = [...this.run.checkpoints].sort((a, b) => b.step - a.step || b.created - a.created);
    replace(this.checkpoints, h("h2", null, "Checkpoints ", h("span", { class: "count" }, String(cps.length))),
      cps.length ? h("div", { class: "table-scroll" }, h("table", { class: "data-table" },
        h("thead", null, h("tr", null, ["path", "kind", "step", "epoch", "size", "metric", "saved", ""].map((c, i) => h("th", { class: i >= 2 && i <= 4 ? "num" : "" }, c)))),
        h("tbody", null, cps.map((c) => h("tr", null,
          h("td", null, h("code", { title: `sha256 ${c.sha256}` }, c.path)),
          h("td", null, h("span", { class: `pill kind-${c.kind}`, title: c.kind === "resume" ? "Everything needed to resume" : "Model weights only" }, c.kind)),
          h("td", { class: "num" }, fmtInt(c.step)),
          h("td", { class: "num" }, fmtInt(c.epoch)),
          h("td", { class: "num" }, fmtBytes(c.size)),
          h("td", { title: fullNum(c.metric_value) }, c.metric_key ? `${c.metric_key} = ${fmtNum(c.metric_value)}` : "–"),
          h("td", { class: "nowrap" }, fmtDateTime(c.created, true)),
          h("td", null, h("a", { class: "mini-btn", href: withToken(c.url), download: "" }, "download")),
        ))),
      )) : h("p", { class: "muted" }, "No checkpoints saved."),
    );
  }

  private async saveNotes(): Promise<void> {
    this.notesSave.disabled = true;
    try {
      this.run = await api.updateRun(this.run.id, { notes: this.notes.value });
      this.notes.value = this.run.notes;
      showBanner("Notes saved.", "info", 2000);
    } catch (err) {
      this.notesSave.disabled = false;
      reportActionError(err, "Saving the notes");
    }
  }

  private async saveTags(tags: string[]): Promise<void> {
    try {
      this.run = await api.updateRun(this.run.id, { tags });
      this.renderTags();
    } catch (err) {
      reportActionError(err, "Changing the tags");
    }
  }

  private async deleteRun(): Promise<void> {
    const r = this.run;
    const sure = window.confirm(`Delete run "${r.name}" (${r.id})?\n\nIts metrics, config and checkpoint files are removed from the store. This cannot be undone.`);
    if (!sure) return;
    try {
      await api.deleteRun(r.id);
      showBanner(`Deleted run ${r.name}.`, "info", 4000);
      location.hash = href({ page: "runs" });
    } catch (err) {
      reportActionError(err, "Deleting the run");
    }
  }
}

function summaryRow(s: SummaryRow, jump: () => void): HTMLElement {
  const best = `${s.mode === "min" ? "lowest" : "highest"} is best`;
  return h("tr", null,
    h("td", null, h("button", { type: "button", class: "link-btn", onclick: jump, title: "Show its chart" }, s.key)),
    h("td", { class: "num", title: fullNum(s.last) }, fmtNum(s.last)),
    h("td", { class: "num best", title: fullNum(s.best) ? `${fullNum(s.best)}: ${best}` : best }, fmtNum(s.best), h("span", { class: "mode" }, s.mode === "min" ? " ↓" : " ↑")),
    h("td", { class: "num", title: fullNum(s.min) }, fmtNum(s.min)),
    h("td", { class: "num", title: fullNum(s.max) }, fmtNum(s.max)),
    h("td", { class: "num" }, fmtInt(s.count)),
    h("td", { class: "num" }, fmtInt(s.last_step)),
  );
}
