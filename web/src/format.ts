// How numbers, times and sizes read in tables, legends and axes.

import type { ConfigValue } from "./api";

/** A metric value: 4 significant digits, exponent form for very small or large magnitudes. */
export function fmtNum(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined) return "–";
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e9) return v.toLocaleString("en-US");
  if (a >= 1e6 || a < 1e-3) return v.toExponential(digits - 1).replace(/\.?0+e/, "e");
  // toPrecision then Number() drops trailing zeros ("0.2500" -> "0.25").
  return String(Number(v.toPrecision(digits)));
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
  return v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US");
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

/** A config value as written (a learning rate reads "0.0003", not "3e-4" rounded). */
export function fmtConfig(v: ConfigValue | undefined): string {
  if (v === undefined) return "";
  if (v === null) return "null";
  if (typeof v === "string") return v;
  return String(v);
}

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
