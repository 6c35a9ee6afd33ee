// The recorded samples of a run's training dynamics: names and colours of their classes, their
// prediction histories, and the small views of one sample (card, tooltip) and of the likely
// mislabeled ones.

import { api, type DynamicsInfo, type SampleTable } from "./api";
import { CATEGORY_COLORS, classColors } from "./colors";
import { h } from "./dom";
import { fmtInt, fmtNum } from "./format";

export class Samples {
  readonly count: number;
  readonly colors: string[];
  private readonly usual: Int32Array;

  constructor(
    readonly run: string,
    readonly info: DynamicsInfo,
    readonly table: SampleTable,
  ) {
    this.count = table.labels.length;
    this.colors = classColors(info.classes, info.projection?.colors);
    this.usual = usualPredictions(table, info.classes);
  }

  /** "3 · cat" when the run named its classes, else "3". */
  name(cls: number): string {
    const names = this.info.class_names;
    return names && cls < names.length ? `${cls} · ${names[cls]}` : String(cls);
  }

  color(cls: number): string {
    return this.colors[cls % this.colors.length];
  }

  /** The position of `epoch` among the recorded epochs (the last one before it when it was not recorded). */
  epochIndex(epoch: number): number {
    const epochs = this.table.epochs;
    let found = 0;
    for (let k = 0; k < epochs.length && epochs[k] <= epoch; k++) found = k;
    return found;
  }

  predicted(index: number, epochIndex: number): number {
    return this.table.predictions[epochIndex][index];
  }

  usualPrediction(index: number): number {
    return this.usual[index];
  }

  /** What a sample is: split and index in its data set. */
  describe(index: number): string {
    return `${this.table.split[index]} sample ${fmtInt(this.table.indices[index])}`;
  }

  sprite(index: number, size: number): HTMLElement | null {
    if (!this.info.sprites) return null;
    return h("img", { class: "sprite", src: api.spriteUrl(this.run, index), width: size, height: size, alt: this.describe(index) });
  }

  /** Each recorded epoch's prediction as a cell in its class colour; wrong ones crossed, `current` outlined. */
  history(index: number, currentEpoch: number | null): HTMLElement {
    const t = this.table;
    const label = t.labels[index];
    return h("div", { class: "history", "aria-label": "predictions per recorded epoch" },
      t.epochs.map((epoch, k) => {
        const p = t.predictions[k][index];
        const wrong = p !== label;
        return h("span", {
          class: `hcell${wrong ? " wrong" : ""}${epoch === currentEpoch ? " current" : ""}`,
          style: { background: this.color(p) },
          title: `epoch ${epoch}: predicted ${this.name(p)}${wrong ? " (wrong)" : ""}`,
          dataset: { epoch: String(epoch) },
        }, String(p));
      }),
    );
  }

  /** Label, prediction at `epoch`, and the prediction history: what the hover tooltip shows. */
  tooltip(index: number, epoch: number): HTMLElement {
    const t = this.table;
    const predicted = this.predicted(index, this.epochIndex(epoch));
    return h("div", { class: "sample-tip" },
      this.sprite(index, 56),
      h("div", null,
        h("div", { class: "muted" }, this.describe(index)),
        h("div", null, "label ", swatch(this.color(t.labels[index])), h("b", null, this.name(t.labels[index]))),
        h("div", null, `predicted at epoch ${epoch} `, swatch(this.color(predicted)), h("b", { class: predicted === t.labels[index] ? "" : "bad" }, this.name(predicted))),
        this.history(index, epoch),
      ),
    );
  }

  /** Everything known of one sample, for the pinned sample's panel. */
  card(index: number, epoch: number, onClose: () => void): HTMLElement {
    const t = this.table;
    const predicted = this.predicted(index, this.epochIndex(epoch));
    const facts: [string, Node | string][] = [
      ["label", h("span", null, swatch(this.color(t.labels[index])), this.name(t.labels[index]))],
      [`predicted (epoch ${epoch})`, h("span", { class: predicted === t.labels[index] ? "" : "bad" }, swatch(this.color(predicted)), this.name(predicted))],
      ["usually predicted", this.name(this.usualPrediction(index))],
      ["confidence", fmtNum(t.confidence[index], 3)],
      ["variability", fmtNum(t.variability[index], 3)],
      ["right in", `${fmtNum((t.correctness[index] ?? 0) * 100, 3)}% of epochs`],
      ["category", h("span", { class: "category", style: { color: CATEGORY_COLORS[t.category[index]] } }, t.category[index])],
      ["forgotten", `${t.forgetting[index]} time${t.forgetting[index] === 1 ? "" : "s"}`],
      ["first learned", t.first_learned[index] < 0 ? "never" : `epoch ${t.first_learned[index]}`],
      ["learned from", t.learned_from[index] < 0 ? "wrong at the end" : `epoch ${t.learned_from[index]}`],
    ];
    return h("div", { class: "sample-card", dataset: { index: String(index) } },
      h("div", { class: "card-head" },
        h("h2", null, `Pinned: ${this.describe(index)}`),
        h("span", { class: "spacer" }),
        h("button", { type: "button", class: "mini-btn", onclick: onClose, title: "Unpin (or double-click the plot's background)" }, "unpin"),
      ),
      h("div", { class: "sample-body" },
        this.sprite(index, 96),
        h("dl", { class: "kv compact" }, facts.map(([k, v]) => [h("dt", null, k), h("dd", null, v)])),
      ),
      h("div", { class: "muted small" }, "Predictions per recorded epoch"),
      this.history(index, epoch),
    );
  }

  /** The likely mislabeled samples, least confident in their label first; a click pins one. */
  mislabeled(onPick: (index: number) => void): HTMLElement {
    const t = this.table;
    if (!t.likely_mislabeled.length) return h("p", { class: "muted" }, "No hard-to-learn samples: nothing looks mislabeled.");
    return h("div", { class: "table-scroll mislabeled" }, h("table", { class: "data-table" },
      h("thead", null, h("tr", null, ["", "sample", "label", "usually predicted", "confidence", "forgotten"].map((c, i) => h("th", { class: i >= 4 ? "num" : "" }, c)))),
      h("tbody", null, t.likely_mislabeled.map((i) => h("tr", { class: "pickable", dataset: { index: String(i) }, onclick: () => onPick(i), title: "Pin this sample" },
        h("td", null, this.sprite(i, 28)),
        h("td", null, h("button", { type: "button", class: "link-btn" }, this.describe(i))),
        h("td", null, swatch(this.color(t.labels[i])), this.name(t.labels[i])),
        h("td", null, swatch(this.color(this.usualPrediction(i))), this.name(this.usualPrediction(i))),
        h("td", { class: "num" }, fmtNum(t.confidence[i], 3)),
        h("td", { class: "num" }, fmtInt(t.forgetting[i])),
      ))),
    ));
  }
}

export function swatch(color: string): HTMLElement {
  return h("span", { class: "swatch", style: { background: color } });
}

function usualPredictions(t: SampleTable, classes: number): Int32Array {
  const out = new Int32Array(t.labels.length);
  const counts = new Int32Array(Math.max(classes, 1));
  for (let i = 0; i < t.labels.length; i++) {
    counts.fill(0);
    for (const row of t.predictions) counts[row[i]]++;
    let best = 0;
    for (let c = 1; c < counts.length; c++) if (counts[c] > counts[best]) best = c;
    out[i] = best;
  }
  return out;
}
