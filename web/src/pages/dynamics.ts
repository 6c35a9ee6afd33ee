// The training-dynamics page of a run: every recorded sample in 2D at each epoch over the
// projection's background (epoch slider, play, colour by label/prediction/correctness, filters),
// hover and pin a sample to see its prediction history and its path, the data map with the likely
// mislabeled samples, and the projection's quality. Without a projection, a button fits one. The pinned
// sample is kept in the address (?sample=<position>), so a link can open the page with a sample's path drawn.

import { api, ApiError, isAbort, type DynamicsInfo, type FitProgress, type ProjectionInfo, type Quality, type RunDetail } from "../api";
import { CORRECTNESS_COLORS } from "../colors";
import { DataMap } from "../datamap";
import { h, replace } from "../dom";
import { fmtInt, fmtNum } from "../format";
import { poll } from "../live";
import type { PageContext } from "../main";
import { emptyCoords, fillCoords, ProjectionPlot, TRANSITION_MS, type PlotCoords } from "../projection";
import { href, replaceRoute } from "../router";
import { Samples, swatch } from "../samples";
import { errorBox, reportActionError } from "../ui";

type ColorBy = "label" | "prediction" | "correctness";
/** The performance measure (devtools, tests) of the time until the first points are drawn. */
const FIRST_POINTS = "epochal: first points drawn";
const COLOR_BY: [ColorBy, string][] = [["label", "label"], ["prediction", "prediction"], ["correctness", "right / wrong"]];
const PLAY_MS = TRANSITION_MS + 400;
const FIT_POLL_MS = 1000;
/** Samples per request for an epoch's coordinates (128 KiB): the first epoch draws as they arrive. */
const CHUNK = 16_384;
/** Epochs loaded ahead of the one shown, so that playing never waits for the next. */
const AHEAD = 2;

export function mountDynamics(root: HTMLElement, ctx: PageContext, id: string, sample: number | null = null): void {
  ctx.setCrumbs(["runs", href({ page: "runs" })], [id, href({ page: "run", id })], "dynamics");
  replace(root, h("div", { class: "loading-note" }, "Loading training dynamics…"));
  Promise.all([api.run(id, ctx.signal), api.dynamics(id, ctx.signal)]).then(
    ([run, info]) => new DynamicsPage(root, ctx, run, info, sample),
    (err) => ctx.signal.aborted || replace(root, errorBox(err, `No training dynamics for run ${id}`)),
  );
}

/** What the filters let through. */
interface Filters {
  splits: Set<string>;
  cls: number | null;
  misclassified: boolean;
  forgotten: boolean;
  category: string;
}

class DynamicsPage {
  private readonly header = h("div", { class: "run-head" });
  private readonly fitCard = h("div", { class: "card fit-card" });
  private readonly projectionSection = h("section", { class: "projection-section" });
  private readonly mapCard = h("div", { class: "card" }, h("h2", null, "Data map"), h("div", { class: "loading-note" }, "Loading samples…"));
  private readonly mislabeledCard = h("div", { class: "card" }, h("h2", null, "Likely mislabeled"));
  private readonly qualityCard = h("div", { class: "card quality-card" });
  private samples: Samples | null = null;
  private dataMap: DataMap | null = null;
  private view: ProjectionView | null = null;
  private viewSignal: AbortController | null = null;
  private following = false;

  constructor(
    root: HTMLElement,
    private readonly ctx: PageContext,
    private readonly run: RunDetail,
    private info: DynamicsInfo,
    /** The sample to pin once the samples are known: from the address. */
    private pinned: number | null,
  ) {
    ctx.setCrumbs(["runs", href({ page: "runs" })], [run.name, href({ page: "run", id: run.id })], "dynamics");
    replace(root, this.header, this.fitCard, this.projectionSection,
      h("div", { class: "two-col" }, this.mapCard, this.mislabeledCard), this.qualityCard);
    this.renderHeader();
    this.renderFit();
    this.renderQuality();
    void this.loadSamples();
    // A fit started elsewhere (the CLI, another tab) is followed too.
    if (info.progress?.running) this.followFit();
  }

  private async loadSamples(): Promise<void> {
    try {
      const table = await api.dynamicsSamples(this.run.id, this.ctx.signal);
      this.samples = new Samples(this.run.id, this.info, table);
    } catch (err) {
      if (!isAbort(err)) replace(this.mapCard, errorBox(err, "Could not load the samples"));
      return;
    }
    const samples = this.samples;
    this.dataMap = new DataMap(samples.table, (i) => this.pin(i), this.ctx.signal);
    replace(this.mapCard, h("h2", null, "Data map"),
      h("p", { class: "muted" }, "Mean confidence in the given label against its variability over the recorded epochs. Click a sample to pin it."),
      this.dataMap.el);
    replace(this.mislabeledCard, h("h2", null, "Likely mislabeled ", h("span", { class: "count" }, String(samples.table.likely_mislabeled.length))),
      h("p", { class: "muted" }, "Hard to learn: the model never grew confident in their label. Least confident first."),
      samples.mislabeled((i) => this.pin(i)));
    this.dataMap.show(allSamples(samples.count), null);
    this.showProjection();
    const pinned = this.pinned;
    this.pinned = null;
    if (pinned !== null && pinned < samples.count) this.pin(pinned);
    else if (pinned !== null) this.remember(null);
  }

  /** The pinned sample in the address. */
  private remember(index: number | null): void {
    if (index === this.pinned) return;
    this.pinned = index;
    replaceRoute({ page: "dynamics", id: this.run.id, sample: index });
  }

  /** Builds (or rebuilds, after a new fit) the projection view. */
  private showProjection(): void {
    this.viewSignal?.abort();
    this.view = null;
    const projection = this.info.projection;
    if (!projection || !this.samples) {
      replace(this.projectionSection);
      return;
    }
    this.samples = new Samples(this.run.id, this.info, this.samples.table);
    this.viewSignal = new AbortController();
    this.ctx.signal.addEventListener("abort", () => this.viewSignal?.abort(), { once: true });
    this.view = new ProjectionView(this.samples, projection, this.viewSignal.signal, (visible, pinned) => {
      this.dataMap?.show(visible, pinned);
      this.remember(pinned);
    });
    replace(this.projectionSection, this.view.el);
    this.view.onEpoch = () => this.renderQuality();
    this.renderQuality();
    void this.view.start();
  }

  private pin(index: number): void {
    if (this.view) this.view.pin(index);
    else {
      this.dataMap?.show(allSamples(this.samples?.count ?? 0), index);
      this.remember(index);
    }
    this.view?.el.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  private renderHeader(): void {
    const i = this.info;
    const splits = Object.entries(i.splits).sort(([a], [b]) => (a === "train" ? -1 : b === "train" ? 1 : 0)).map(([s, n]) => `${fmtInt(n)} ${s}`).join(", ");
    const epochs = i.epochs.length > 1 ? `epochs ${i.epochs[0]}–${i.epochs[i.epochs.length - 1]}` : `epoch ${i.epochs[0]}`;
    replace(this.header,
      h("div", { class: "title-row" },
        h("h1", null, "Training dynamics"),
        h("a", { href: href({ page: "run", id: this.run.id }) }, this.run.name),
        h("code", { class: "run-id" }, this.run.id),
        h("span", { class: "spacer" }),
        i.projection && !i.progress?.running
          ? h("button", { type: "button", class: "btn", title: "Fit the projection again", onclick: () => void this.startFit() }, "Refit projection")
          : null,
      ),
      h("p", { class: "muted" },
        `${fmtInt(i.samples)} samples (${splits}) · ${i.classes} classes · ${i.epochs.length} recorded ${i.epochs.length === 1 ? "epoch" : "epochs"} (${epochs})`,
        i.projection?.seconds ? ` · projection fitted in ${fmtNum(i.projection.seconds, 3)} s` : ""),
    );
  }

  // ---- fitting --------------------------------------------------------------------------------

  private renderFit(): void {
    const p = this.info.progress;
    const card = this.fitCard;
    if (p?.running) {
      replace(card, h("h2", null, "Fitting the projection…"), progressBar(p),
        h("p", { class: "muted" }, "The page fills in when it is done."));
      card.hidden = false;
      card.dataset.state = "running";
      return;
    }
    const failed = p !== null && (p.state === "failed" || (p.state === "running" && !p.running));
    if (this.info.projection && !failed) {
      card.hidden = true;
      card.dataset.state = p?.state ?? "none";
      return;
    }
    const button = h("button", { type: "button", class: "btn primary fit-btn", onclick: () => void this.startFit() },
      failed ? "Fit again" : "Fit projection");
    replace(card,
      h("h2", null, failed ? "The fit failed" : "No projection yet"),
      failed
        ? h("pre", { class: "fit-error", role: "alert" }, p!.state === "running" ? "The fit stopped without finishing: its process is gone." : p!.message || "no message")
        : h("p", null, "A projection places every recorded sample in 2D at every epoch, so you can watch the classes form, ",
          "see where the decision boundaries lie and follow single samples. Fitting it takes from seconds to minutes."),
      h("div", null, button, h("span", { class: "muted fit-cli" }, " or run ", h("code", null, `epochal dynamics fit ${this.run.id}`))),
    );
    card.hidden = false;
    card.dataset.state = failed ? "failed" : "none";
  }

  private async startFit(): Promise<void> {
    try {
      this.info = { ...this.info, progress: await api.fitDynamics(this.run.id) };
    } catch (err) {
      // Already running (started elsewhere): follow that one.
      if (!(err instanceof ApiError && err.status === 409)) {
        reportActionError(err, "Starting the fit");
        return;
      }
    }
    this.renderFit();
    this.renderHeader();
    this.followFit();
  }

  /** Polls the fit's progress; when it is done, the page fills in with the new projection. */
  private followFit(): void {
    if (this.following) return;
    this.following = true;
    poll(async () => {
      const next = await api.dynamics(this.run.id, this.ctx.signal);
      const fitted = next.progress !== null && !next.progress.running;
      this.info = next;
      this.renderFit();
      if (!fitted) return true;
      this.following = false;
      this.renderHeader();
      this.renderQuality();
      if (next.progress?.state === "done") this.showProjection();
      return false;
    }, this.ctx.signal, (err) => reportActionError(err, "Following the fit"), FIT_POLL_MS);
  }

  // ---- quality --------------------------------------------------------------------------------

  private renderQuality(): void {
    const q = this.info.quality;
    this.qualityCard.hidden = !q;
    if (!q) return;
    replace(this.qualityCard,
      h("h2", null, "Projection quality"),
      h("p", { class: "muted" }, "How faithfully the 2D positions keep each epoch's neighbourhoods and predictions, per split; and between consecutive epochs."),
      measuresTable("epoch", Object.keys(q.mean).length ? { ...q.epochs, mean: q.mean } : q.epochs, this.view?.epoch ?? null),
      Object.keys(q.temporal).length ? measuresTable("epochs", q.temporal, null) : null,
    );
  }
}

/** The scatter plot with its toolbar, legend and pinned sample. */
class ProjectionView {
  readonly el = h("div", { class: "card projection-card" });
  private readonly plot: ProjectionPlot;
  private readonly coords = new Map<number, Promise<PlotCoords>>();
  private readonly slider: HTMLInputElement;
  private readonly epochLabel = h("output", { class: "epoch-label" });
  private readonly playButton = h("button", { type: "button", class: "btn play-btn" }, "▶ Play");
  private readonly colorButtons = new Map<ColorBy, HTMLButtonElement>();
  private readonly shownNote = h("span", { class: "muted shown-note" });
  private readonly legend = h("div", { class: "class-legend" });
  private readonly side = h("div", { class: "projection-side" });
  private readonly tip = h("div", { class: "plot-tip", hidden: true });
  private readonly filters: Filters = { splits: new Set(["train", "test"]), cls: null, misclassified: false, forgotten: false, category: "" };
  private epochIndex = 0;
  private colorBy: ColorBy = "label";
  private pinned: number | null = null;
  private timer: number | undefined;
  private drawing: Promise<void> = Promise.resolve();
  /** When the view was made: its first points' time is measured from here. */
  private readonly started = performance.now();
  private firstDrawn = false;
  onEpoch: () => void = () => {};

  constructor(
    private readonly samples: Samples,
    private readonly projection: ProjectionInfo,
    private readonly signal: AbortSignal,
    private readonly onShown: (visible: number[], pinned: number | null) => void,
  ) {
    this.plot = new ProjectionPlot(projection.extent, samples.count, signal);
    this.plot.onHover = (i) => this.hover(i);
    this.plot.onPick = (i) => this.pin(i);
    this.plot.onUnpick = () => this.pin(null);
    this.plot.el.append(this.tip);
    const last = projection.epochs.length - 1;
    this.epochIndex = last;
    this.slider = h("input", { type: "range", class: "epoch-slider", min: 0, max: last, step: 1, value: String(last), "aria-label": "Epoch" });
    this.slider.addEventListener("input", () => this.goTo(Number(this.slider.value)));
    this.playButton.addEventListener("click", () => this.togglePlay());
    signal.addEventListener("abort", () => window.clearTimeout(this.timer), { once: true });
    replace(this.el, this.toolbar(), h("div", { class: "projection-body" }, this.plot.el, this.side));
    this.renderLegend();
    this.renderSide();
  }

  get epoch(): number {
    return this.projection.epochs[this.epochIndex];
  }

  async start(): Promise<void> {
    // The epoch shown first draws as its parts arrive (a large run's points fill in, not all at once) ...
    const first = this.epoch;
    let queued = false;
    let complete = false;
    const drawPart = (coords: PlotCoords, all: boolean) => {
      complete = all;
      if (queued || all) return;
      queued = true;
      this.drawing = this.drawing.catch(() => undefined).then(async () => {
        queued = false;
        // Every part is in by now: the full draw below shows them, one draw of all the points less.
        if (this.signal.aborted || complete || first !== this.epoch) return;
        const [values, colors] = this.colorValues();
        await this.plot.draw(coords, values, colors, { transition: false, visible: this.visibleOrNull(), pinned: this.pinned });
        this.measureFirstPoints();
      });
    };
    await this.load(first, drawPart).catch(() => undefined);
    await this.redraw(false);
    // ... then the others in the background, those after it first, so that the slider, playing and the
    // trajectories are quick.
    const epochs = this.projection.epochs;
    for (const epoch of [...epochs.slice(this.epochIndex + 1), ...epochs.slice(0, this.epochIndex)]) {
      if (this.signal.aborted) return;
      await this.load(epoch).catch(() => undefined);
    }
  }

  private toolbar(): HTMLElement {
    const epochs = this.projection.epochs;
    const step = (d: number) => this.goTo(Math.min(epochs.length - 1, Math.max(0, this.epochIndex + d)));
    const segmented = h("span", { class: "segmented" }, COLOR_BY.map(([mode, label]) => {
      const b = h("button", { type: "button", class: `seg${mode === this.colorBy ? " active" : ""}`, dataset: { mode }, onclick: () => this.setColorBy(mode) }, label);
      this.colorButtons.set(mode, b);
      return b;
    }));
    const splits = Object.entries(this.samples.info.splits).sort(([a], [b]) => (a === "train" ? -1 : b === "train" ? 1 : a.localeCompare(b)));
    const splitBoxes = splits.map(([split, n]) => {
      const box = h("input", { type: "checkbox", checked: true, class: `split-${split}`, onchange: () => {
        if (box.checked) this.filters.splits.add(split);
        else this.filters.splits.delete(split);
        void this.refilter();
      } });
      return h("label", { class: "tool" }, box, `${split} (${fmtInt(n)})`);
    });
    const classSelect = h("select", { class: "class-filter", "aria-label": "Class", onchange: () => {
      this.filters.cls = classSelect.value === "" ? null : Number(classSelect.value);
      void this.refilter();
    } }, h("option", { value: "" }, "all classes"),
    Array.from({ length: this.samples.info.classes }, (_, c) => h("option", { value: String(c) }, `label ${this.samples.name(c)}`)));
    const check = (cls: string, label: string, title: string, set: (on: boolean) => void) => {
      const box = h("input", { type: "checkbox", class: cls, onchange: () => {
        set(box.checked);
        void this.refilter();
      } });
      return h("label", { class: "tool", title }, box, label);
    };
    const categorySelect = h("select", { class: "category-filter", "aria-label": "Category", onchange: () => {
      this.filters.category = categorySelect.value;
      void this.refilter();
    } }, [["", "any category"], ["easy", "easy to learn"], ["ambiguous", "ambiguous"], ["hard", "hard to learn"]].map(([v, t]) => h("option", { value: v }, t)));
    return h("div", { class: "toolbar dynamics-toolbar" },
      h("span", { class: "tool" },
        h("button", { type: "button", class: "mini-btn", title: "Previous epoch", "aria-label": "Previous epoch", onclick: () => step(-1) }, "◀"),
        this.slider,
        h("button", { type: "button", class: "mini-btn", title: "Next epoch", "aria-label": "Next epoch", onclick: () => step(1) }, "▶"),
        this.epochLabel, this.playButton),
      h("span", { class: "tool" }, h("span", { class: "tool-label" }, "Colour by"), segmented),
      h("span", { class: "tool" }, splitBoxes),
      h("span", { class: "tool" }, classSelect, categorySelect),
      check("misclassified-filter", "misclassified now", "Predicted wrong at this epoch", (on) => (this.filters.misclassified = on)),
      check("forgotten-filter", "forgotten", "Forgotten at least once: right at one epoch, wrong at the next", (on) => (this.filters.forgotten = on)),
      this.shownNote,
    );
  }

  // ---- epochs and drawing ---------------------------------------------------------------------

  /**
   * An epoch's coordinates, fetched once as float32 in parts of CHUNK samples, requested together; `onPart`
   * sees them after each part arrives (the samples still missing sit outside the view), `complete` after the last.
   */
  private load(epoch: number, onPart?: (coords: PlotCoords, complete: boolean) => void): Promise<PlotCoords> {
    let found = this.coords.get(epoch);
    if (!found) {
      const started = performance.now();
      const coords = emptyCoords(this.samples.count);
      const parts: Promise<void>[] = [];
      const total = Math.ceil(this.samples.count / CHUNK);
      let arrived = 0;
      for (let offset = 0; offset < this.samples.count; offset += CHUNK) {
        parts.push(api.dynamicsCoords(this.samples.run, epoch, offset, CHUNK, this.signal).then((pairs) => {
          fillCoords(coords, this.projection.extent, offset, pairs);
          onPart?.(coords, ++arrived === total);
        }));
      }
      found = Promise.all(parts).then(() => {
        performance.measure(`epochal: epoch ${epoch} loaded`, { start: started });
        return coords;
      });
      found.catch(() => this.coords.delete(epoch));
      this.coords.set(epoch, found);
    }
    return found;
  }

  private goTo(index: number): void {
    if (index === this.epochIndex) return;
    this.epochIndex = index;
    this.slider.value = String(index);
    void this.redraw(true);
    this.prefetch();
    this.onEpoch();
  }

  private measureFirstPoints(): void {
    if (!this.firstDrawn) performance.measure(FIRST_POINTS, { start: this.started });
    this.firstDrawn = true;
  }

  /** The next epochs, so that the next step of playing (or of the slider) starts at once. */
  private prefetch(): void {
    const epochs = this.projection.epochs;
    for (let k = this.epochIndex + 1; k <= Math.min(epochs.length - 1, this.epochIndex + AHEAD); k++) {
      void this.load(epochs[k]).catch(() => undefined);
    }
  }

  /** Draws the current epoch: positions (moving there when `transition`), colours, filter, background. */
  private redraw(transition: boolean): Promise<void> {
    const epoch = this.epoch;
    // One draw at a time, in order; a failed one (lost WebGL context) does not stop the next.
    this.drawing = this.drawing.catch(() => undefined).then(async () => {
      if (this.signal.aborted || epoch !== this.epoch) return;
      let coords: PlotCoords;
      try {
        coords = await this.load(epoch);
      } catch (err) {
        if (!isAbort(err)) replace(this.side, errorBox(err, `Could not load epoch ${epoch}`));
        return;
      }
      const [values, colors] = this.colorValues();
      const drawing = performance.now();
      await Promise.all([
        this.plot.background(this.projection.backgrounds ? api.backgroundUrl(this.samples.run, epoch) : null),
        this.plot.draw(coords, values, colors, { transition, visible: this.visibleOrNull(), pinned: this.pinned }),
      ]);
      performance.measure(`epochal: epoch ${epoch} drawn`, { start: drawing });
      this.measureFirstPoints();
      this.epochLabel.textContent = `epoch ${epoch}`;
      this.el.dataset.epoch = String(epoch);
      this.el.dataset.colorBy = this.colorBy;
      this.updateShown();
      await this.drawTrajectory();
      this.renderSide();
    });
    return this.drawing;
  }

  private colorValues(): [Float32Array, string[]] {
    const t = this.samples.table;
    const k = this.samples.epochIndex(this.epoch);
    const values = new Float32Array(this.samples.count);
    for (let i = 0; i < values.length; i++) {
      if (this.colorBy === "label") values[i] = t.labels[i];
      else if (this.colorBy === "prediction") values[i] = t.predictions[k][i];
      else values[i] = t.predictions[k][i] === t.labels[i] ? 0 : 1;
    }
    return [values, this.colorBy === "correctness" ? CORRECTNESS_COLORS : this.samples.colors];
  }

  private setColorBy(mode: ColorBy): void {
    this.colorBy = mode;
    for (const [m, b] of this.colorButtons) b.classList.toggle("active", m === mode);
    this.renderLegend();
    void this.redraw(false);
  }

  private togglePlay(): void {
    if (this.timer !== undefined) {
      this.stop();
      return;
    }
    const last = this.projection.epochs.length - 1;
    if (this.epochIndex >= last) this.goTo(0);
    this.prefetch();
    this.playButton.textContent = "❚❚ Pause";
    this.el.dataset.playing = "1";
    const tick = () => {
      if (this.epochIndex >= last) {
        this.stop();
        return;
      }
      this.goTo(this.epochIndex + 1);
      this.timer = window.setTimeout(tick, PLAY_MS);
    };
    this.timer = window.setTimeout(tick, PLAY_MS);
  }

  private stop(): void {
    window.clearTimeout(this.timer);
    this.timer = undefined;
    this.playButton.textContent = "▶ Play";
    delete this.el.dataset.playing;
  }

  // ---- filters ----------------------------------------------------------------------------------

  private visible(): number[] {
    const t = this.samples.table;
    const f = this.filters;
    const k = this.samples.epochIndex(this.epoch);
    const out: number[] = [];
    for (let i = 0; i < this.samples.count; i++) {
      if (!f.splits.has(t.split[i])) continue;
      if (f.cls !== null && t.labels[i] !== f.cls) continue;
      if (f.misclassified && t.predictions[k][i] === t.labels[i]) continue;
      if (f.forgotten && t.forgetting[i] === 0) continue;
      if (f.category && t.category[i] !== f.category) continue;
      out.push(i);
    }
    return out;
  }

  private visibleOrNull(): number[] | null {
    const v = this.visible();
    return v.length === this.samples.count ? null : v;
  }

  private async refilter(): Promise<void> {
    await this.drawing;
    await this.plot.show(this.visibleOrNull());
    this.plot.pin(this.pinned);
    this.updateShown();
  }

  private updateShown(): void {
    const visible = this.visible();
    this.shownNote.textContent = `${fmtInt(visible.length)} of ${fmtInt(this.samples.count)} shown`;
    this.onShown(visible, this.pinned);
  }

  // ---- hover and pin ----------------------------------------------------------------------------

  private hover(index: number | null): void {
    if (index === null) {
      this.tip.hidden = true;
      return;
    }
    replace(this.tip, this.samples.tooltip(index, this.epoch));
    this.tip.hidden = false;
    const at = this.plot.screenPosition(index);
    if (at) {
      // Below and right of the point, or above and left of it near the plot's edges.
      const { clientWidth: width, clientHeight: height } = this.plot.el;
      const left = at[0] + 14 + this.tip.offsetWidth > width ? at[0] - 14 - this.tip.offsetWidth : at[0] + 14;
      const top = at[1] + 14 + this.tip.offsetHeight > height ? at[1] - 14 - this.tip.offsetHeight : at[1] + 14;
      this.tip.style.left = `${Math.max(0, left)}px`;
      this.tip.style.top = `${Math.max(0, top)}px`;
    }
  }

  pin(index: number | null): void {
    if (index === this.pinned) return;
    this.pinned = index;
    this.plot.pin(index);
    if (index === null) delete this.el.dataset.pinned;
    else this.el.dataset.pinned = String(index);
    void this.drawTrajectory();
    this.renderSide();
    this.onShown(this.visible(), index);
  }

  /** The pinned sample's positions at every fitted epoch, as a line. */
  private async drawTrajectory(): Promise<void> {
    const index = this.pinned;
    if (index === null) {
      await this.plot.trajectory(null, 0);
      return;
    }
    const all = await Promise.all(this.projection.epochs.map((e) => this.load(e))).catch(() => null);
    if (!all || index !== this.pinned) return;
    const path = all.map((c) => [c.x[index], c.y[index]] as [number, number]);
    await this.plot.trajectory(path, this.epochIndex);
  }

  private renderSide(): void {
    replace(this.side,
      this.legend,
      this.pinned === null
        ? h("p", { class: "muted pin-hint" }, "Hover a point to see its sample; click it to pin it and draw its path through the epochs.")
        : this.samples.card(this.pinned, this.epoch, () => this.pin(null)),
    );
  }

  private renderLegend(): void {
    const s = this.samples;
    const items = this.colorBy === "correctness"
      ? [["right", CORRECTNESS_COLORS[0]], ["wrong", CORRECTNESS_COLORS[1]]]
      : Array.from({ length: s.info.classes }, (_, c) => [s.name(c), s.color(c)]);
    replace(this.legend, h("div", { class: "muted small" }, this.colorBy === "correctness" ? "Prediction at this epoch" : `Colour: ${this.colorBy}`),
      items.map(([name, color]) => h("span", { class: "legend-item" }, swatch(color), name)));
  }
}

function progressBar(p: FitProgress): HTMLElement {
  const pct = Math.round(p.fraction * 100);
  return h("div", { class: "fit-progress", dataset: { stage: p.stage, fraction: String(p.fraction) } },
    h("div", { class: "bar", role: "progressbar", "aria-valuenow": pct, "aria-valuemin": 0, "aria-valuemax": 100 },
      h("div", { class: "bar-fill", style: { width: `${pct}%` } })),
    h("div", null, h("b", null, p.stage || "starting"), ` · ${pct}%`, p.message ? h("span", { class: "muted" }, ` · ${p.message}`) : null),
  );
}

/** One row per epoch (or pair of epochs), a column per split and measure. */
function measuresTable(keyName: string, rows: Quality["epochs"], current: number | null): HTMLElement {
  // Numeric keys in order, then "mean".
  const order = (key: string) => (Number.isNaN(parseFloat(key)) ? Infinity : parseFloat(key));
  const keys = Object.keys(rows).sort((a, b) => order(a) - order(b));
  const columns: [string, string][] = [];
  for (const key of keys) {
    for (const [split, measures] of Object.entries(rows[key])) {
      for (const name of Object.keys(measures)) {
        if (!columns.some(([s, n]) => s === split && n === name)) columns.push([split, name]);
      }
    }
  }
  columns.sort((a, b) => (a[0] === b[0] ? 0 : a[0] === "train" ? -1 : b[0] === "train" ? 1 : a[0].localeCompare(b[0])));
  const splits = [...new Set(columns.map(([s]) => s))];
  return h("div", { class: "table-scroll" }, h("table", { class: "data-table quality-table", dataset: { key: keyName } },
    h("thead", null,
      h("tr", null, h("th", null, ""), splits.map((s) => h("th", { class: "split-head", colspan: columns.filter(([c]) => c === s).length }, s))),
      h("tr", null, h("th", null, keyName), columns.map(([, n]) => h("th", { class: "num" }, n))),
    ),
    h("tbody", null, keys.map((key) => h("tr", { class: current !== null && key === String(current) ? "current" : key === "mean" ? "mean" : "" },
      h("td", null, key),
      columns.map(([s, n]) => h("td", { class: "num" }, fmtNum(rows[key][s]?.[n] ?? null, 3))),
    ))),
  ));
}

function allSamples(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i);
}
