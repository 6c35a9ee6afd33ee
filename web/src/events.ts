// The run page's events panel: one epoch of the run's sample ledger. Its counts per kind of event (flips,
// forgotten, learned, confidence jumps) and the classes that gained or lost samples; the samples behind the
// chosen kind, most likely mislabeled first; the epoch's confusion matrix, whose cells list their samples;
// and one sample's history over the epochs, with a link to its path in the projection where there is one.
// It lists at most LIMIT samples: the API's answer, not the whole data set.

import { api, isAbort, type EventKind, type LedgerEpoch, type LedgerInfo, type LedgerSample, type SampleHistory } from "./api";
import { classColors, CORRECTNESS_COLORS } from "./colors";
import { h, replace } from "./dom";
import { fmtInt, fmtNum } from "./format";
import { href, type LedgerState, type LedgerTab } from "./router";
import { swatch } from "./samples";
import { errorBox } from "./ui";

/** The most samples a list shows. */
export const LIMIT = 200;

const KINDS: [EventKind, string, string][] = [
  ["flips", "flips", "Samples whose predicted class changed"],
  ["forgotten", "forgotten", "Right at the end of the epoch before, wrong at the end of this one"],
  ["learned", "learned", "Wrong at the end of the epoch before, right at the end of this one"],
  ["confidence_jumps", "confidence jumps", "Samples whose probability of their label moved by 0.5 or more"],
];

export class EventsPanel {
  readonly el = h("aside", { class: "events-panel", hidden: true, "aria-label": "Events of an epoch" });
  private readonly colors: string[];
  private state: LedgerState | null = null;
  /** Bumped by every change: answers to an older state are dropped. */
  private seq = 0;
  /** The sample list shown, to open another sample's history in it without asking the server again. */
  private list: { el: HTMLElement; samples: LedgerSample[]; count: number; empty: string } | null = null;

  constructor(
    private readonly run: string,
    private info: LedgerInfo,
    private readonly signal: AbortSignal,
    /** Told of every change (null: closed), to keep it in the address. */
    private readonly onState: (state: LedgerState | null) => void,
  ) {
    this.colors = classColors(info.classes);
    this.el.addEventListener("keydown", (e) => e.key === "Escape" && this.close());
    signal.addEventListener("abort", () => document.body.classList.remove("events-open"), { once: true });
  }

  /** A newer answer of the ledger (a live run's new epoch): used from the next change on. */
  setInfo(info: LedgerInfo): void {
    this.info = info;
  }

  /** Opens (or moves) the panel to `state`; an epoch the ledger does not have closes it. */
  open(state: LedgerState): void {
    if (!this.info.epochs.some((e) => e.epoch === state.epoch)) {
      this.close();
      return;
    }
    const opening = this.el.hidden;
    this.state = state;
    this.el.hidden = false;
    document.body.classList.add("events-open");
    this.render();
    this.onState(state);
    if (opening) this.el.querySelector<HTMLElement>(".events-close")?.focus({ preventScroll: true });
  }

  close(): void {
    if (this.el.hidden) return;
    this.seq++;
    this.state = null;
    this.list = null;
    this.el.hidden = true;
    delete this.el.dataset.epoch;
    document.body.classList.remove("events-open");
    replace(this.el);
    this.onState(null);
  }

  private set(patch: Partial<LedgerState>): void {
    if (!this.state) return;
    const next = { ...this.state, ...patch };
    const list = this.list;
    if (!list || Object.keys(patch).some((k) => k !== "sample")) {
      this.open(next);
      return;
    }
    // Another sample's history: the list stays (and where it was scrolled to).
    this.seq++;
    this.state = next;
    this.onState(next);
    const el = this.sampleList(list.samples, list.count, list.empty);
    list.el.replaceWith(el);
  }

  private name(cls: number): string {
    const names = this.info.class_names;
    return names && cls < names.length ? `${cls} · ${names[cls]}` : String(cls);
  }

  private render(): void {
    const state = this.state!;
    const seq = ++this.seq;
    this.list = null;
    const epochs = this.info.epochs;
    const at = epochs.findIndex((e) => e.epoch === state.epoch);
    const e = epochs[at];
    this.el.dataset.epoch = String(e.epoch);
    this.el.dataset.tab = state.tab;
    const go = (i: number) => this.open({ epoch: epochs[i].epoch, tab: state.tab, cell: null, sample: null });
    const tabs: [LedgerTab, string, string, number | null][] = [
      ...KINDS.map(([kind, label, title]) => [kind, label, title, e[kind]] as [LedgerTab, string, string, number]),
      ["confusion", "confusion matrix", "Targets against predictions at the end of this epoch", null],
    ];
    const body = h("div", { class: "events-body" }, h("div", { class: "loading-note" }, "Loading…"));
    replace(this.el,
      h("div", { class: "events-head" },
        h("button", { type: "button", class: "mini-btn", title: "Previous epoch", "aria-label": "Previous epoch", disabled: at === 0, onclick: () => go(at - 1) }, "◀"),
        h("h2", { class: "events-title" }, `Epoch ${e.epoch}`),
        h("button", { type: "button", class: "mini-btn", title: "Next epoch", "aria-label": "Next epoch", disabled: at === epochs.length - 1, onclick: () => go(at + 1) }, "▶"),
        h("span", { class: "spacer" }),
        h("button", { type: "button", class: "mini-btn events-close", title: "Close (Esc)", "aria-label": "Close the events panel", onclick: () => this.close() }, "×"),
      ),
      this.facts(e, at === 0),
      h("div", { class: "events-tabs", role: "tablist", "aria-label": "Kind of event" }, tabs.map(([tab, label, title, n]) =>
        h("button", {
          type: "button", role: "tab", class: `seg${tab === state.tab ? " active" : ""}`, "aria-selected": String(tab === state.tab),
          title, dataset: { tab, count: n === null ? "" : String(n) },
          onclick: () => this.set({ tab, cell: null, sample: null }),
        }, label, n === null ? null : h("span", { class: "tab-count num" }, fmtInt(n))))),
      body,
    );
    if (state.tab === "confusion") void this.showConfusion(body, seq);
    else void this.showKind(body, state.tab, seq);
  }

  private facts(e: LedgerEpoch, first: boolean): HTMLElement {
    const changes = Object.entries(e.class_changes).sort(([, a], [, b]) => Math.abs(b) - Math.abs(a));
    return h("div", { class: "events-facts" },
      h("span", { class: "muted" }, `${fmtInt(e.samples)} samples · step ${fmtInt(e.last_step)}`),
      e.burst ? h("span", { class: "pill burst-pill", title: "This epoch forgot unusually many samples" }, "forgetting burst") : null,
      first ? h("div", { class: "muted" }, "The ledger's first epoch: nothing before it to compare, so no events.") : null,
      changes.length ? h("div", { class: "class-changes" }, h("span", { class: "muted" }, "predicted classes: "),
        changes.map(([c, n]) => h("span", {
          class: `class-change ${n > 0 ? "gain" : "loss"}`,
          title: `${fmtInt(Math.abs(n))} samples ${n > 0 ? "more" : "fewer"} predicted as ${this.name(Number(c))} than the epoch before`,
          dataset: { cls: c },
        }, swatch(this.colors[Number(c)]), `${this.name(Number(c))} ${n > 0 ? "+" : "−"}${fmtInt(Math.abs(n))}`))) : null,
    );
  }

  private async showKind(body: HTMLElement, kind: EventKind, seq: number): Promise<void> {
    const state = this.state!;
    try {
      const found = await api.ledgerEvents(this.run, state.epoch, kind, LIMIT, this.signal);
      if (seq !== this.seq) return;
      const label = KINDS.find(([k]) => k === kind)![1];
      replace(body, this.sampleList(found.samples, found.count, `No samples ${label === "flips" ? "flipped" : label === "confidence jumps" ? "jumped in confidence" : label} in this epoch.`));
    } catch (err) {
      if (seq === this.seq && !isAbort(err)) replace(body, errorBox(err, `Could not load the ${kind}`));
    }
  }

  private async showConfusion(body: HTMLElement, seq: number): Promise<void> {
    const state = this.state!;
    try {
      const found = await api.ledgerConfusion(this.run, state.epoch, this.signal);
      if (seq !== this.seq) return;
      const cellList = h("div", { class: "cell-samples" });
      replace(body, this.matrix(found.matrix, state.cell), cellList);
      if (state.cell) await this.showCell(cellList, state.cell, seq);
      else replace(cellList, h("p", { class: "muted small" }, "Click a cell for its samples."));
    } catch (err) {
      if (seq === this.seq && !isAbort(err)) replace(body, errorBox(err, "Could not load the confusion matrix"));
    }
  }

  private matrix(matrix: number[][], chosen: [number, number] | null): HTMLElement {
    const classes = matrix.length;
    return h("div", { class: "table-scroll" }, h("table", { class: "confusion", "aria-label": "Confusion matrix: rows are labels, columns predictions" },
      h("thead", null,
        h("tr", null, h("th", { class: "corner muted", title: "rows: the label; columns: the prediction" }, "label \\ pred."),
          Array.from({ length: classes }, (_, c) => h("th", { scope: "col", title: `predicted ${this.name(c)}` }, this.name(c))))),
      h("tbody", null, matrix.map((row, label) => {
        const total = row.reduce((a, b) => a + b, 0) || 1;
        return h("tr", null, h("th", { scope: "row", title: `label ${this.name(label)}` }, this.name(label)),
          row.map((n, predicted) => {
            const right = label === predicted;
            const share = n / total;
            const background = n === 0 ? "" : right
              ? `rgba(22, 163, 74, ${0.1 + 0.5 * share})` : `rgba(220, 38, 38, ${0.12 + 0.6 * Math.sqrt(share)})`;
            const active = chosen !== null && chosen[0] === label && chosen[1] === predicted;
            return h("td", { class: `num${right ? " diagonal" : ""}`, style: { background } },
              n === 0 ? h("span", { class: "zero" }, "0") : h("button", {
                type: "button", class: `cell-btn${active ? " active" : ""}`, dataset: { label: String(label), predicted: String(predicted), count: String(n) },
                title: `label ${this.name(label)}, predicted ${this.name(predicted)}: ${fmtInt(n)} samples. Click to list them.`,
                onclick: () => this.set({ cell: [label, predicted], sample: null }),
              }, fmtInt(n)));
          }));
      })),
    ));
  }

  private async showCell(list: HTMLElement, [label, predicted]: [number, number], seq: number): Promise<void> {
    replace(list, h("div", { class: "loading-note" }, "Loading…"));
    try {
      const found = await api.ledgerCell(this.run, this.state!.epoch, label, predicted, LIMIT, this.signal);
      if (seq !== this.seq) return;
      replace(list, h("h3", { class: "cell-title" }, `label ${this.name(label)}, predicted ${this.name(predicted)}`),
        this.sampleList(found.samples, found.count, "No samples in this cell."));
    } catch (err) {
      if (seq === this.seq && !isAbort(err)) replace(list, errorBox(err, "Could not load the cell's samples"));
    }
  }

  /** Samples with their thumbnail (where the run has them), label, AUM and mislabeled score; a click opens one's history. */
  private sampleList(samples: LedgerSample[], count: number, empty: string): HTMLElement {
    const el = this.listOf(samples, count, empty);
    this.list = { el, samples, count, empty };
    return el;
  }

  private listOf(samples: LedgerSample[], count: number, empty: string): HTMLElement {
    if (!samples.length) return h("p", { class: "muted empty-list" }, empty);
    const open = this.state!.sample;
    const sprites = this.info.sprites && samples.some((s) => s.position !== null);
    const rows: HTMLElement[] = [];
    for (const s of samples) {
      const pick = () => this.set({ sample: this.state?.sample === s.sample ? null : s.sample });
      rows.push(h("tr", { class: `ledger-sample${s.sample === open ? " open" : ""}`, dataset: { sample: String(s.sample) } },
        sprites ? h("td", null, s.position === null ? null
          : h("img", { class: "sprite", src: api.spriteUrl(this.run, s.position), width: 28, height: 28, alt: `sample ${s.sample}`, loading: "lazy" })) : null,
        h("td", null, h("button", { type: "button", class: "link-btn", "aria-expanded": String(s.sample === open), title: "Show its history", onclick: pick }, `sample ${s.sample}`)),
        h("td", null, swatch(this.colors[s.label % this.colors.length]), this.name(s.label)),
        h("td", { class: "num", title: "area under the margin: low or negative, the model kept preferring another class" }, fmtNum(s.aum, 3)),
        h("td", { class: "num", title: "robust standard deviations below the typical sample's AUM: past about 3, likely mislabeled" }, fmtNum(s.mislabeled_score, 3)),
      ));
      if (s.sample === open) {
        const cell = h("td", { colspan: sprites ? 5 : 4 }, h("div", { class: "loading-note" }, "Loading its history…"));
        rows.push(h("tr", { class: "history-row" }, cell));
        void this.showHistory(cell, s, this.seq);
      }
    }
    return h("div", { class: "sample-list" },
      h("p", { class: "muted small list-note" }, samples.length < count
        ? `The ${fmtInt(samples.length)} most likely mislabeled of ${fmtInt(count)} samples.`
        : `${fmtInt(count)} sample${count === 1 ? "" : "s"}, most likely mislabeled first.`),
      h("table", { class: "data-table ledger-samples" },
        h("thead", null, h("tr", null, sprites ? h("th", null, "") : null, h("th", null, "sample"), h("th", null, "label"),
          h("th", { class: "num", title: "area under the margin" }, "AUM"), h("th", { class: "num", title: "mislabeled score" }, "mislabeled"))),
        h("tbody", null, rows)),
    );
  }

  private async showHistory(cell: HTMLElement, s: LedgerSample, seq: number): Promise<void> {
    try {
      const history = await api.ledgerSample(this.run, s.sample, this.signal);
      if (seq !== this.seq) return;
      replace(cell, this.history(history, s));
    } catch (err) {
      if (seq === this.seq && !isAbort(err)) replace(cell, errorBox(err, `Could not load sample ${s.sample}`));
    }
  }

  /** Per epoch: the prediction, right (green) or wrong (red), and the probability of the label as the cell's fill. */
  private history(history: SampleHistory, s: LedgerSample): HTMLElement {
    const current = this.state!.epoch;
    const dynamics = this.info.projection && s.position !== null
      ? h("a", { class: "mini-btn dynamics-sample-link", href: href({ page: "dynamics", id: this.run, sample: s.position }),
        title: "Open the training dynamics with this sample pinned and its path through the epochs drawn" }, "Show in the projection")
      : null;
    return h("div", { class: "sample-history", dataset: { sample: String(history.sample) } },
      h("div", { class: "history-head" },
        h("span", { class: "muted small" }, `per epoch: the prediction, and the probability of its label`),
        h("span", { class: "spacer" }), dynamics),
      h("div", { class: "ledger-history", role: "list" }, history.epochs.map((e) => h("span", {
        role: "listitem",
        class: `lcell${e.right ? "" : " wrong"}${e.epoch === current ? " current" : ""}`,
        title: `epoch ${e.epoch}: label ${this.name(e.target)}, predicted ${this.name(e.predicted)} (${e.right ? "right" : "wrong"}), ` +
          `probability of the label ${fmtNum(e.probability, 3)}`,
        dataset: { epoch: String(e.epoch), right: String(e.right) },
      },
      h("span", { class: "lcell-bar", style: { height: `${Math.round(e.probability * 100)}%`, background: CORRECTNESS_COLORS[e.right ? 0 : 1] } }),
      h("span", { class: "lcell-text" }, String(e.predicted))))),
      h("div", { class: "muted small" }, `epochs ${history.epochs[0]?.epoch ?? "–"}–${history.epochs[history.epochs.length - 1]?.epoch ?? "–"}; ` +
        `forgotten ${fmtInt(s.forgetting_events)} time${s.forgetting_events === 1 ? "" : "s"}`),
    );
  }
}
