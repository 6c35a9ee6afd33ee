// uPlot plugin: ctrl/alt + wheel zooms x around the cursor, shift + drag pans.
// A plain wheel keeps scrolling the page: hijacking it would trap the reader in a grid of charts.

import type uPlot from "uplot";

export interface ZoomCallbacks {
  /** The x range to keep inside (the extent of the whole series). */
  bounds: () => [number, number] | null;
  /** Called with the new x range; `final` is false while a pan is still moving. */
  change: (min: number, max: number, final: boolean) => void;
}

export function zoomPlugin(cb: ZoomCallbacks): uPlot.Plugin {
  return {
    hooks: {
      ready: (u) => {
        const over = u.over;
        let wheelTimer: number | undefined;

        over.addEventListener(
          "wheel",
          (e) => {
            if (!(e.ctrlKey || e.metaKey || e.altKey)) return;
            e.preventDefault();
            const { min, max } = u.scales.x;
            if (min === undefined || max === undefined) return;
            const rect = over.getBoundingClientRect();
            const frac = (e.clientX - rect.left) / rect.width;
            const at = min + frac * (max - min);
            const factor = e.deltaY < 0 ? 0.8 : 1.25;
            const [lo, hi] = clamp(at - frac * (max - min) * factor, at + (1 - frac) * (max - min) * factor, cb.bounds());
            cb.change(lo, hi, false);
            // Treat a burst of wheel events as one gesture: refetch once it settles.
            window.clearTimeout(wheelTimer);
            wheelTimer = window.setTimeout(() => cb.change(lo, hi, true), 150);
          },
          { passive: false },
        );

        // Capture on the root, so uPlot's own mousedown (drag-select) never sees a shift-drag.
        u.root.addEventListener(
          "mousedown",
          (e) => {
            if (!e.shiftKey || e.button !== 0 || !over.contains(e.target as Node)) return;
            e.stopPropagation();
            e.preventDefault();
            const { min, max } = u.scales.x;
            if (min === undefined || max === undefined) return;
            const width = over.getBoundingClientRect().width;
            const x0 = e.clientX;
            let range: [number, number] = [min, max];
            const move = (ev: MouseEvent) => {
              const dv = ((x0 - ev.clientX) / width) * (max - min);
              range = clamp(min + dv, max + dv, cb.bounds(), true);
              cb.change(range[0], range[1], false);
            };
            const up = () => {
              window.removeEventListener("mousemove", move);
              window.removeEventListener("mouseup", up);
              cb.change(range[0], range[1], true);
            };
            window.addEventListener("mousemove", move);
            window.addEventListener("mouseup", up);
          },
          true,
        );
      },
    },
  };
}

/** Keeps [lo, hi] inside `bounds`; a pan keeps its width, a zoom is cut at the edges. */
function clamp(lo: number, hi: number, bounds: [number, number] | null, keepWidth = false): [number, number] {
  if (!bounds) return [lo, hi];
  const [bLo, bHi] = bounds;
  if (keepWidth) {
    const w = hi - lo;
    if (w >= bHi - bLo) return [bLo, bHi];
    if (lo < bLo) return [bLo, bLo + w];
    if (hi > bHi) return [bHi - w, bHi];
    return [lo, hi];
  }
  return [Math.max(lo, bLo), Math.min(hi, bHi)];
}
