// Colours: one per run (distinct on white), and a sequential scale for values.

const PALETTE = [
  "#2563eb", // blue
  "#dc2626", // red
  "#16a34a", // green
  "#9333ea", // purple
  "#ea580c", // orange
  "#0891b2", // cyan
  "#db2777", // pink
  "#65a30d", // lime
  "#4f46e5", // indigo
  "#a16207", // brown
];

export function runColor(index: number): string {
  return PALETTE[index % PALETTE.length];
}

/** `#rrggbb` with an alpha, for the faint raw curve drawn behind a smoothed one. */
export function withAlpha(hex: string, alpha: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

// Viridis at 7 stops: perceptually even, readable for colour-blind people, and dark-enough ends.
const VIRIDIS = [
  [68, 1, 84],
  [68, 57, 131],
  [49, 104, 142],
  [33, 145, 140],
  [53, 183, 121],
  [143, 215, 68],
  [253, 231, 37],
];

/** The colour of `t` in [0, 1] on a viridis scale. */
export function sequential(t: number): string {
  const c = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(c));
  const f = c - i;
  const [r, g, b] = VIRIDIS[i].map((v, k) => Math.round(v + (VIRIDIS[i + 1][k] - v) * f));
  return `rgb(${r}, ${g}, ${b})`;
}
