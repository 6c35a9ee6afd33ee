// Marks on a run's loss and accuracy charts at the end of each epoch of its sample ledger: what happened
// to the samples there (flips, forgotten, learned, confidence jumps, classes that gained or lost samples),
// bigger and red where the epoch forgot unusually many (a burst). A mark is a button on the x axis; a
// click opens the events panel of its epoch. Marks sit at the epoch's last step (x by step) or at the
// epoch (x by epoch); wall time has none.

import type uPlot from "uplot";
import type { LedgerEpoch } from "./api";
import type { XMode } from "./chartview";
import { h } from "./dom";
import { fmtInt } from "./format";

/** The charts that get marks: those whose key names a loss or an accuracy. */
const MARKED = /loss|acc/i;
const BURST_COLOR = "rgba(220, 38, 38, 0.55)";

export class EventMarks {
  private epochs: LedgerEpoch[] = [];
  private names: string[] | null = null;
  private readonly listeners = new Set<() => void>();

  /** A mark was clicked. */
  constructor(private readonly onOpen: (epoch: number) => void) {}

  /** The ledger's epochs (and the classes' names); every chart with marks redraws them. */
  set(epochs: LedgerEpoch[], names: string[] | null): void {
    this.epochs = epochs;
    this.names = names;
    this.listeners.forEach((fn) => fn());
  }

  /** The ledger's `epoch`, if it has it. */
  epoch(epoch: number): LedgerEpoch | undefined {
    return this.epochs.find((e) => e.epoch === epoch);
  }

  applies(key: string): boolean {
    return MARKED.test(key);
  }

  /** What a mark says: the epoch's counts. */
  describe(e: LedgerEpoch): string {
    if (e === this.epochs[0]) return `epoch ${e.epoch}: the ledger's first epoch (nothing before it to compare)`;
    const changes = Object.entries(e.class_changes)
      .map(([c, n]) => `${this.names?.[Number(c)] ?? `class ${c}`} ${n > 0 ? "+" : "−"}${fmtInt(Math.abs(n))}`);
    return `epoch ${e.epoch}${e.burst ? " · forgetting burst" : ""}: ${fmtInt(e.flips)} flips, ${fmtInt(e.forgotten)} forgotten, ` +
      `${fmtInt(e.learned)} learned, ${fmtInt(e.confidence_jumps)} confidence jumps` +
      (changes.length ? `; predicted classes: ${changes.join(", ")}` : "");
  }

  /** The uPlot plugin of one chart, whose x axis is `mode()`. */
  plugin(mode: () => XMode): uPlot.Plugin {
    const layer = h("div", { class: "event-marks" });
    let buttons: [LedgerEpoch, HTMLButtonElement][] = [];
    let plot: uPlot | null = null;
    const xOf = (e: LedgerEpoch) => (mode() === "step" ? e.last_step : e.epoch);
    const marked = () => mode() === "step" || mode() === "epoch";

    const build = () => {
      const largest = Math.max(1, ...this.epochs.map(changed));
      buttons = marked() ? this.epochs.map((e) => {
        const text = this.describe(e);
        const size = Math.round(6 + 6 * Math.sqrt(changed(e) / largest));
        const b = h("button", {
          type: "button",
          class: `event-mark${e.burst ? " burst" : ""}`,
          title: `${text}. Click for its samples.`,
          "aria-label": `Events of ${text}`,
          dataset: { epoch: String(e.epoch) },
          style: { height: `${e.burst ? size + 6 : size}px` },
          onclick: () => this.onOpen(e.epoch),
        });
        // uPlot's drag-to-zoom starts on mousedown in the plot: a mark's click is not a drag.
        b.addEventListener("mousedown", (ev) => ev.stopPropagation());
        return [e, b] as [LedgerEpoch, HTMLButtonElement];
      }) : [];
      layer.replaceChildren(...buttons.map(([, b]) => b));
    };
    const place = (u: uPlot) => {
      const width = u.over.clientWidth;
      for (const [e, b] of buttons) {
        const x = u.valToPos(xOf(e), "x");
        b.hidden = !(x >= -1 && x <= width + 1);
        b.style.left = `${x}px`;
      }
      layer.dataset.marks = String(buttons.filter(([, b]) => !b.hidden).length);
    };
    const changedMarks = () => {
      build();
      if (plot) {
        place(plot);
        plot.redraw(false);
      }
    };

    return {
      hooks: {
        init: [(u) => {
          plot = u;
          u.over.append(layer);
          this.listeners.add(changedMarks);
          build();
        }],
        draw: [(u) => {
          place(u);
          // A burst's epoch: a thin red line across the plot, under the mark.
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = BURST_COLOR;
          ctx.lineWidth = Math.max(1, devicePixelRatio);
          ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
          for (const [e, b] of buttons) {
            if (!e.burst || b.hidden) continue;
            const x = Math.round(u.valToPos(xOf(e), "x", true));
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          }
          ctx.restore();
        }],
        destroy: [() => {
          this.listeners.delete(changedMarks);
          plot = null;
        }],
      },
    };
  }
}

/** How much changed in an epoch: what sizes its mark. */
function changed(e: LedgerEpoch): number {
  return e.flips + e.forgotten + e.learned;
}
