// Colours: one per run (distinct on white), a colour and a dash per data split, and a sequential scale for values.

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

// A split's line: its own colour where one run is drawn, its dash in every colour (so on the compare
// page each run keeps its colour and the splits are told apart by their dashes).
const SPLIT_STYLES: Record<string, { color: string; dash: number[] }> = {
  train: { color: "#2563eb", dash: [] },
  valid: { color: "#ea580c", dash: [6, 3] },
  val: { color: "#ea580c", dash: [6, 3] },
  test: { color: "#16a34a", dash: [2, 2] },
  eval: { color: "#9333ea", dash: [8, 3, 2, 3] },
};

/** A split's colour and dash pattern; names as `epochal.keys.SPLITS` has them, any case. */
export function splitStyle(split: string): { color: string; dash: number[] } {
  return SPLIT_STYLES[split.toLowerCase()] ?? { color: "#6b7380", dash: [1, 3] };
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

// Classes without colours of their own (no projection yet): matplotlib's tab10, then tab20's light ones.
const CLASS_PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
  "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
];

/** One colour per class: the projection's own when it has them, else a fixed palette (repeating). */
export function classColors(count: number, given?: string[] | null): string[] {
  const source = given && given.length ? given : CLASS_PALETTE;
  return Array.from({ length: Math.max(count, 1) }, (_, i) => source[i % source.length]);
}

/** Where a sample sits on the data map: easy to learn, ambiguous, or hard to learn. */
export const CATEGORY_COLORS = { easy: "#16a34a", ambiguous: "#d97706", hard: "#dc2626" } as const;

/** Right and wrong predictions. */
export const CORRECTNESS_COLORS = ["#16a34a", "#dc2626"];
