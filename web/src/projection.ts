// The projection: every sample at one epoch as a WebGL point (regl-scatterplot), over that epoch's
// background image, with a pinned sample's path through the epochs drawn as an annotation line.
//
// regl-scatterplot draws points given in [-1, 1] and its background image over exactly [-1, 1]
// (row 0 at the top), so the projection's `extent` is mapped onto [-1, 1] on both axes and the
// plot's aspect ratio is set to that of the extent: points and background then line up.

import createScatterplot from "regl-scatterplot";

import { h } from "./dom";

type Scatterplot = ReturnType<typeof createScatterplot>;
type Texture = Awaited<ReturnType<Scatterplot["createTextureFromUrl"]>>;
type Extent = [number, number, number, number];

/** One epoch's coordinates, already mapped onto [-1, 1]. */
export interface PlotCoords {
  x: Float32Array;
  y: Float32Array;
}

export const TRANSITION_MS = 600;

/** Where a sample without coordinates (NaN in the file), or whose coordinates have not arrived yet, is drawn: far outside the view. */
const OUTSIDE = 99;

/** Coordinates for `count` samples, none known yet. */
export function emptyCoords(count: number): PlotCoords {
  return { x: new Float32Array(count).fill(OUTSIDE), y: new Float32Array(count).fill(OUTSIDE) };
}

/**
 * Puts the samples from `offset` on into `coords`: `pairs` holds their projection coordinates as the API
 * sends them (x, y, x, y, ...), mapped here onto regl-scatterplot's [-1, 1] square.
 */
export function fillCoords(coords: PlotCoords, extent: Extent, offset: number, pairs: Float32Array): void {
  const [xmin, xmax, ymin, ymax] = extent;
  const sx = 2 / (xmax - xmin || 1);
  const sy = 2 / (ymax - ymin || 1);
  const n = Math.min(pairs.length >> 1, coords.x.length - offset);
  for (let i = 0; i < n; i++) {
    const x = pairs[2 * i];
    const y = pairs[2 * i + 1];
    coords.x[offset + i] = Number.isNaN(x) ? OUTSIDE : -1 + (x - xmin) * sx;
    coords.y[offset + i] = Number.isNaN(y) ? OUTSIDE : -1 + (y - ymin) * sy;
  }
}

export class ProjectionPlot {
  readonly el = h("div", { class: "projection-plot" });
  private readonly canvas = h("canvas");
  private readonly plot: Scatterplot;
  private readonly textures = new Map<string, Promise<Texture | null>>();
  private drawn = false;
  private count = 0;
  private hovered = -1;

  /** The mouse went over a point (its index) or off it (null). */
  onHover: (index: number | null) => void = () => {};
  /** A point was clicked. */
  onPick: (index: number) => void = () => {};
  /** A double click into the void. */
  onUnpick: () => void = () => {};

  constructor(extent: Extent, count: number, signal: AbortSignal) {
    const [xmin, xmax, ymin, ymax] = extent;
    this.el.append(this.canvas);
    this.count = count;
    this.plot = createScatterplot({
      canvas: this.canvas,
      width: "auto",
      height: "auto",
      aspectRatio: (xmax - xmin) / (ymax - ymin || 1),
      backgroundColor: "#ffffff",
      pointSize: count > 20_000 ? 3 : count > 5_000 ? 4 : 6,
      pointSizeSelected: 4,
      pointOutlineWidth: 2,
      pointColorHover: "#111827",
      pointColorActive: "#111827",
      opacity: 0.9,
      colorBy: "valueA",
      annotationLineColor: "#111827",
      annotationLineWidth: 2,
      // No lasso and no rotation: a click pins one sample, a drag pans.
      actionKeyMap: {},
    } as Parameters<typeof createScatterplot>[0]);
    this.plot.subscribe("pointOver", (index) => {
      this.hovered = index;
      this.el.dataset.hovered = String(index);
      this.onHover(index);
    });
    this.plot.subscribe("pointOut", () => {
      this.hovered = -1;
      delete this.el.dataset.hovered;
      this.onHover(null);
    });
    this.plot.subscribe("select", ({ points }) => {
      if (points.length) this.onPick(points[0]);
    });
    this.canvas.addEventListener("dblclick", () => {
      if (this.hovered < 0) this.onUnpick();
    });
    // For tools and tests: where a sample is drawn, in pixels from the plot's top left corner.
    Object.assign(this.el, { screenPosition: (index: number) => this.screenPosition(index) });
    signal.addEventListener("abort", () => this.plot.destroy(), { once: true });
  }

  /** Draws the points (moving them from where they were when `transition`), each in `colors[values[i]]`. */
  async draw(coords: PlotCoords, values: Float32Array, colors: string[], opts: { transition: boolean; visible: number[] | null; pinned: number | null }): Promise<void> {
    await this.plot.set({ pointColor: colors });
    const transition = opts.transition && this.drawn;
    await this.plot.draw(
      { x: coords.x, y: coords.y, valueA: values },
      {
        transition,
        transitionDuration: TRANSITION_MS,
        preventFilterReset: true,
        zDataType: "categorical",
      },
    );
    if (!this.drawn) {
      this.drawn = true;
      await this.plot.zoomToArea({ x: -1, y: -1, width: 2, height: 2 });
    }
    await this.show(opts.visible);
    this.pin(opts.pinned);
    this.el.dataset.points = String(this.count);
  }

  /** Only the samples in `visible` are drawn (all when null). */
  async show(visible: number[] | null): Promise<void> {
    if (!this.drawn) return;
    if (visible === null || visible.length === this.count) await this.plot.unfilter({ preventEvent: true });
    else await this.plot.filter(visible, { preventEvent: true });
    this.el.dataset.visible = String(visible === null ? this.count : visible.length);
  }

  /** Outlines the pinned sample. */
  pin(index: number | null): void {
    if (!this.drawn) return;
    if (index === null) this.plot.deselect({ preventEvent: true });
    else this.plot.select([index], { preventEvent: true });
  }

  /** The background image at `url`, loaded once; none when it cannot be loaded. */
  async background(url: string | null): Promise<void> {
    if (url === null) {
      await this.plot.set({ backgroundImage: null });
      this.el.dataset.background = "0";
      return;
    }
    let texture = this.textures.get(url);
    if (!texture) {
      texture = this.plot.createTextureFromUrl(url).catch(() => null);
      this.textures.set(url, texture);
    }
    const loaded = await texture;
    if (loaded) await this.plot.set({ backgroundImage: loaded });
    this.el.dataset.background = loaded ? "1" : "0";
  }

  /** A line through `path` (points in [-1, 1]), a dot at each vertex and a box around `current`. */
  async trajectory(path: [number, number][] | null, current: number): Promise<void> {
    if (!path || path.length === 0) {
      await this.plot.clearAnnotations();
      delete this.el.dataset.trajectory;
      return;
    }
    const box = (x: number, y: number, r: number, lineColor: string) => ({ x1: x - r, y1: y - r, x2: x + r, y2: y + r, lineColor, lineWidth: 2 });
    await this.plot.drawAnnotations([
      { vertices: path, lineColor: rgba("#111827", 0.75), lineWidth: 3 },
      ...path.map(([x, y]) => box(x, y, 0.006, "#111827")),
      box(path[current][0], path[current][1], 0.02, "#111827"),
    ]);
    this.el.dataset.trajectory = String(path.length);
  }

  screenPosition(index: number): [number, number] | null {
    return this.drawn ? (this.plot.getScreenPosition(index) ?? null) : null;
  }
}

/** `#rrggbb` as the normalised quadruple regl-scatterplot takes (it reads no CSS rgba() strings). */
function rgba(hex: string, alpha: number): [number, number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [((n >> 16) & 255) / 255, ((n >> 8) & 255) / 255, (n & 255) / 255, alpha];
}
