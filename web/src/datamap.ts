// The data map (Swayamdipta et al., 2020): each sample's variability (x) against its mean confidence
// in its given label (y), coloured by category: easy to learn at the top, hard to learn at the
// bottom, ambiguous in between. A click pins the nearest sample.

import type { SampleTable } from "./api";
import { CATEGORY_COLORS } from "./colors";
import { h } from "./dom";

const HEIGHT = 300;
const PAD = { left: 44, right: 12, top: 10, bottom: 34 };
const PICK_PX = 8;

export class DataMap {
  readonly el = h("div", { class: "datamap" });
  private readonly canvas = h("canvas");
  private visible: number[] = [];
  private pinned: number | null = null;
  private xMax = 0.5;
  private readonly resize: ResizeObserver;

  constructor(
    private readonly table: SampleTable,
    private readonly onPick: (index: number) => void,
    signal: AbortSignal,
  ) {
    for (const v of table.variability) if (v !== null && v > this.xMax) this.xMax = v;
    this.el.append(this.canvas, legend());
    this.canvas.addEventListener("click", (e) => {
      const found = this.nearest(e.offsetX, e.offsetY);
      if (found !== null) this.onPick(found);
    });
    this.canvas.addEventListener("mousemove", (e) => {
      this.canvas.style.cursor = this.nearest(e.offsetX, e.offsetY) === null ? "default" : "pointer";
    });
    this.resize = new ResizeObserver(() => this.draw());
    this.resize.observe(this.el);
    signal.addEventListener("abort", () => this.resize.disconnect(), { once: true });
  }

  show(visible: number[], pinned: number | null): void {
    this.visible = visible;
    this.pinned = pinned;
    this.draw();
  }

  private size(): [number, number] {
    return [Math.max(200, this.el.clientWidth), HEIGHT];
  }

  private toScreen(i: number): [number, number] | null {
    const v = this.table.variability[i];
    const c = this.table.confidence[i];
    if (v === null || c === null) return null;
    const [w, hgt] = this.size();
    return [PAD.left + (v / this.xMax) * (w - PAD.left - PAD.right), PAD.top + (1 - c) * (hgt - PAD.top - PAD.bottom)];
  }

  private nearest(x: number, y: number): number | null {
    let best: number | null = null;
    let bestDist = PICK_PX * PICK_PX;
    for (const i of this.visible) {
      const at = this.toScreen(i);
      if (!at) continue;
      const d = (at[0] - x) ** 2 + (at[1] - y) ** 2;
      if (d <= bestDist) {
        best = i;
        bestDist = d;
      }
    }
    return best;
  }

  private draw(): void {
    const [w, hgt] = this.size();
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(w * ratio);
    this.canvas.height = Math.round(hgt * ratio);
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${hgt}px`;
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    this.axes(ctx, w, hgt);
    const size = this.visible.length > 10_000 ? 2 : 3;
    ctx.globalAlpha = 0.7;
    for (const i of this.visible) {
      const at = this.toScreen(i);
      if (!at) continue;
      ctx.fillStyle = CATEGORY_COLORS[this.table.category[i]];
      ctx.fillRect(at[0] - size / 2, at[1] - size / 2, size, size);
    }
    ctx.globalAlpha = 1;
    const pinned = this.pinned === null ? null : this.toScreen(this.pinned);
    if (pinned) {
      ctx.strokeStyle = "#111827";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(pinned[0], pinned[1], 6, 0, 2 * Math.PI);
      ctx.stroke();
    }
    this.el.dataset.points = String(this.visible.length);
  }

  private axes(ctx: CanvasRenderingContext2D, w: number, hgt: number): void {
    const left = PAD.left;
    const right = w - PAD.right;
    const top = PAD.top;
    const bottom = hgt - PAD.bottom;
    ctx.strokeStyle = "#e3e6eb";
    ctx.fillStyle = "#6b7380";
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const c of [0, 0.25, 0.5, 0.75, 1]) {
      const y = top + (1 - c) * (bottom - top);
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(right, y);
      ctx.stroke();
      ctx.fillText(String(c), left - 6, y);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const step = this.xMax > 0.5 ? 0.25 : 0.1;
    for (let v = 0; v <= this.xMax + 1e-9; v += step) {
      const x = left + (v / this.xMax) * (right - left);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, bottom);
      ctx.stroke();
      ctx.fillText(String(Number(v.toFixed(2))), x, bottom + 4);
    }
    ctx.fillText("variability (std. of the label's probability over epochs)", (left + right) / 2, bottom + 18);
    ctx.save();
    ctx.translate(10, (top + bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle";
    ctx.fillText("confidence", 0, 0);
    ctx.restore();
  }
}

function legend(): HTMLElement {
  return h("div", { class: "datamap-legend" },
    (Object.entries(CATEGORY_COLORS) as [string, string][]).map(([name, color]) =>
      h("span", { class: "legend-item" }, h("span", { class: "swatch", style: { background: color } }), name === "hard" ? "hard to learn" : name === "easy" ? "easy to learn" : name),
    ),
  );
}
