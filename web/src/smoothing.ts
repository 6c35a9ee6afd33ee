// Exponential moving average, debiased as TensorBoard does, so the curve does not start near zero.

/**
 * Smooths `y` with weight `w` in [0, 1). Nulls (NaN or ±inf on the server) stay null and do not
 * enter the average: `n` counts finite points only, so the debiasing term matches the data seen.
 */
export function smooth(y: ArrayLike<number | null>, w: number): (number | null)[] {
  const out: (number | null)[] = new Array(y.length);
  if (w <= 0) {
    for (let i = 0; i < y.length; i++) out[i] = y[i];
    return out;
  }
  let last = 0;
  let n = 0;
  for (let i = 0; i < y.length; i++) {
    const v = y[i];
    if (v === null || !Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    n++;
    last = last * w + (1 - w) * v;
    out[i] = last / (1 - Math.pow(w, n));
  }
  return out;
}
