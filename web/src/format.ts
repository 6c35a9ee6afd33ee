// How numbers, times and sizes read in tables, legends and axes.

import type { ConfigValue } from "./api";

// One formatter for every integer: toLocaleString() makes a new one per call, which a table of a
// thousand keys feels.
const integers = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/**
 * A number for people: `digits` significant digits (0.07495866834877081 reads 0.07496), integers as
 * integers (1,234,567), no fraction hidden in an integer part of 1,000 or more (1,234.5678 reads
 * 1,235), exponent form below 1e-4 and from 1e9 on (3.2e-7, 1.5e12). Pair it with `fullNum` in a
 * `title`, so that the exact value is a hover away.
 */
export function fmtNum(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined) return "–";
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e15) return integers.format(v);
  if (a >= 1e9 || a < 1e-4) return v.toExponential(digits - 1).replace(/\.?0+e/, "e").replace("e+", "e");
  if (a >= 10 ** (digits - 1)) return integers.format(Math.round(v));
  // toPrecision then Number() drops trailing zeros ("0.2500" -> "0.25"); String() stays decimal above 1e-6.
  return String(Number(v.toPrecision(digits)));
}

/** The exact value where `fmtNum` rounds it (for a `title`); undefined where it shows every digit. */
export function fullNum(v: number | null | undefined): string | undefined {
  if (v === null || v === undefined || !Number.isFinite(v) || Number.isInteger(v)) return undefined;
  return String(v);
}

/** Axis tick: compact, so a y axis of losses or a 1M-step x axis stays narrow. */
export function fmtTick(v: number): string {
  const a = Math.abs(v);
  if (v === 0) return "0";
  if (a >= 1e9) return trim(v / 1e9) + "G";
  if (a >= 1e6) return trim(v / 1e6) + "M";
  if (a >= 1e4) return trim(v / 1e3) + "k";
  if (a < 1e-3) return v.toExponential(1).replace(/\.0e/, "e");
  return String(Number(v.toPrecision(4)));
}

function trim(v: number): string {
  return String(Number(v.toPrecision(3)));
}

/** Integer counts with thousands separators. */
export function fmtInt(v: number | null | undefined): string {
  return v === null || v === undefined ? "–" : integers.format(Math.round(v));
}

/** Seconds as "1h 02m 03s", "2m 05s", "4.2s". */
export function fmtDuration(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return "–";
  if (s < 10) return `${s.toFixed(1)}s`;
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  const pad = (n: number) => String(n).padStart(2, "0");
  if (h > 0) return `${h}h ${pad(m)}m ${pad(sec)}s`;
  if (m > 0) return `${m}m ${pad(sec)}s`;
  return `${sec}s`;
}

/** A relative-time axis tick: "0", "30s", "5m", "1h 30m". */
export function fmtRelTick(s: number): string {
  if (s === 0) return "0";
  const sign = s < 0 ? "−" : "";
  const a = Math.abs(s);
  if (a < 60) return sign + trim(a) + "s";
  if (a < 3600) {
    const m = Math.floor(a / 60);
    const sec = Math.round(a % 60);
    return sign + (sec ? `${m}m ${sec}s` : `${m}m`);
  }
  const h = Math.floor(a / 3600);
  const m = Math.round((a % 3600) / 60);
  return sign + (m ? `${h}h ${m}m` : `${h}h`);
}

/** Unix seconds as a local "2025-11-21 14:35:07". */
export function fmtDateTime(unix: number | null | undefined, seconds = false): string {
  if (unix === null || unix === undefined) return "–";
  const d = new Date(unix * 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}` + (seconds ? `:${pad(d.getSeconds())}` : "");
  return `${date} ${time}`;
}

/** "just now", "5 min ago", for heartbeats. */
export function fmtAgo(unix: number | null | undefined): string {
  if (unix === null || unix === undefined) return "–";
  const s = Date.now() / 1000 - unix;
  if (s < 5) return "just now";
  if (s < 120) return `${Math.round(s)} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** Bytes as "12.3 MB". */
export function fmtBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** A config value exactly as written: for titles, and where values are matched. */
export function fmtConfig(v: ConfigValue | undefined): string {
  if (v === undefined) return "";
  if (v === null) return "null";
  if (typeof v === "string") return v;
  return String(v);
}

/**
 * A config value in a table cell: fractions as `fmtNum` shows them (a learning rate of
 * 0.07495866834877081 reads 0.07496, 0.0003 stays 0.0003), integers as written (a seed of 1234567,
 * not 1,234,567), anything else as `fmtConfig`. Give the cell `title: fmtConfig(v)`.
 */
export function fmtConfigShort(v: ConfigValue | undefined): string {
  if (typeof v === "number" && Number.isFinite(v) && !Number.isInteger(v)) return fmtNum(v);
  return fmtConfig(v);
}

/** Compares keys in natural order ("layer2" before "layer10"), quickly: one collator for every call. */
export const compareKeys = new Intl.Collator(undefined, { numeric: true }).compare;

/** Compares for sorting: numbers numerically, strings naturally ("run-2" < "run-10"), nulls last. */
export function compareValues(a: unknown, b: unknown, dir: 1 | -1): number {
  const aNull = a === null || a === undefined || a === "" || (typeof a === "number" && Number.isNaN(a));
  const bNull = b === null || b === undefined || b === "" || (typeof b === "number" && Number.isNaN(b));
  if (aNull || bNull) return aNull === bNull ? 0 : aNull ? 1 : -1; // nulls last in both directions
  if (typeof a === "number" && typeof b === "number") return (a - b) * dir;
  if (typeof a === "boolean" && typeof b === "boolean") return (Number(a) - Number(b)) * dir;
  return collator.compare(String(a), String(b)) * dir;
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
