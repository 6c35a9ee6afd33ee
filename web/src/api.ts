// Typed client for the JSON API under /api, with the access token handled in one place.

export type Status = "running" | "finished" | "failed" | "interrupted" | "crashed";
export type Mode = "min" | "max";
export type XAxis = "step" | "epoch" | "time";
export type ConfigValue = string | number | boolean | null;

export interface StoreInfo {
  path: string;
  runs: number;
  projects: string[];
  tags: string[];
  read_only: boolean;
  version: string;
}

export interface MetricCell {
  last: number | null;
  best: number | null;
  mode: Mode;
  count: number;
  last_step: number;
}

export interface RunRow {
  id: string;
  name: string;
  project: string;
  status: Status;
  tags: string[];
  started: number;
  ended: number | null;
  duration: number;
  steps: number;
  epochs: number;
  notes: string;
  config: Record<string, ConfigValue>;
  metrics: Record<string, MetricCell>;
  /** The run's main metrics, best first: the server's one rule (epochal.keys.main_metrics). */
  main_metrics: string[];
  /** Ranks of the DDP job that recorded the run; 1 for a single process. */
  world_size: number;
}

export interface RunList {
  /** One page of the matching runs, in the asked order. */
  runs: RunRow[];
  /** Runs matching the filters (started at `as_of` or earlier). */
  total: number;
  offset: number;
  limit: number;
  /** Matching runs started after `as_of`: new since the list was first loaded. */
  newer: number;
  metric_keys: string[];
  /** The main metrics of the listed runs together: the default metric columns (as `epochal ls` shows). */
  main_metrics: string[];
  config_keys: string[];
}

/** Which runs /runs and /run-ids select, in what order; every field may be left out. */
export interface RunGroupQuery extends RunFilter {
  /** config keys whose equal values make a group */
  group_by: string[];
  /** metric columns such as `valid/loss:best` */
  metric?: string[];
}

export interface RunGroups {
  group_by: string[];
  metrics: string[];
  groups: { values: ConfigValue[]; count: number; stats: Record<string, { count: number; mean: number | null; std: number | null }> }[];
}

export interface RunFilter {
  /** text in the name, id, project, tags or notes */
  q?: string;
  project?: string;
  tag?: string;
  status?: string;
  /** conditions such as `lr<0.01`, `valid/loss:best<=0.3` */
  where?: string[];
  /** seconds since the epoch: only runs started then or earlier */
  as_of?: number;
}

export interface RunPageQuery extends RunFilter {
  /** a run column, `config.<key>`, or `<metric>:last` / `<metric>:best` */
  sort?: string;
  order?: "asc" | "desc";
  limit?: number;
  offset?: number;
  /** keys whose last and best each row carries */
  metric?: string[];
}

export interface RunIds {
  ids: string[];
  total: number;
}

export interface SummaryRow {
  key: string;
  count: number;
  last: number | null;
  last_step: number;
  min: number | null;
  max: number | null;
  best: number | null;
  mode: Mode;
  /** The data split the key's first part names (epochal.keys.split_of), or null. */
  split: string | null;
}

export interface Checkpoint {
  path: string;
  step: number;
  epoch: number;
  size: number;
  sha256: string;
  created: number;
  metric_key: string | null;
  metric_value: number | null;
  mode: Mode | null;
  kind: "resume" | "weights";
  url: string;
}

export type ConfigTree = { [key: string]: ConfigValue | ConfigTree | ConfigValue[] };

export interface RankProcess {
  rank: number;
  host: string;
  pid: number;
}

export interface RunDetail extends RunRow {
  host: string;
  pid: number;
  /** Each rank's process under DDP (rank 0's is host / pid); empty for a single process. */
  ranks: RankProcess[];
  command: string;
  git_commit: string | null;
  python: string;
  torch: string | null;
  segment: number;
  heartbeat: number | null;
  config_tree: ConfigTree;
  summary: SummaryRow[];
  checkpoints: Checkpoint[];
}

export interface Series {
  key: string;
  x_axis: XAxis;
  total: number;
  in_range: number;
  downsampled: boolean;
  x: number[];
  y: (number | null)[];
  nonfinite: number;
  /** With `smoothing`: the value smoothed over every stored point, at each point sent; null where y is. */
  smoothed: (number | null)[] | null;
}

export interface ProjectionInfo {
  epochs: number[];
  /** xmin, xmax, ymin, ymax: of every epoch's coordinates and background image (row 0 at ymax). */
  extent: [number, number, number, number];
  resolution: number;
  /** One colour per class, by class number. */
  colors: string[];
  /** Whether each epoch has a background image (a projection fitted without prediction heads has none). */
  backgrounds: boolean;
  params: Record<string, unknown>;
  seconds: number | null;
}

/** measure name -> value */
export type Measures = Record<string, number | null>;

export interface Quality {
  /** epoch -> split -> measures */
  epochs: Record<string, Record<string, Measures>>;
  /** "a-b" -> split -> measures */
  temporal: Record<string, Record<string, Measures>>;
  /** split -> each measure's mean over the epochs */
  mean: Record<string, Measures>;
}

export interface FitProgress {
  state: "running" | "done" | "failed";
  stage: string;
  fraction: number;
  message: string;
  pid: number | null;
  started: string | null;
  updated: string | null;
  /** state running and its process alive */
  running: boolean;
}

export interface DynamicsInfo {
  run: string;
  epochs: number[];
  samples: number;
  splits: Record<string, number>;
  classes: number;
  class_names: string[] | null;
  sprites: boolean;
  projection: ProjectionInfo | null;
  quality: Quality | null;
  progress: FitProgress | null;
}

export type SampleCategory = "easy" | "ambiguous" | "hard";
export type Split = "train" | "test";

export interface SampleTable {
  epochs: number[];
  labels: number[];
  split: Split[];
  indices: number[];
  /** per recorded epoch, per sample */
  predictions: number[][];
  confidence: (number | null)[];
  variability: (number | null)[];
  correctness: (number | null)[];
  forgetting: number[];
  first_learned: number[];
  learned_from: number[];
  category: SampleCategory[];
  likely_mislabeled: number[];
}

/** What happened to the samples in one epoch of a run's ledger, against the epoch before. */
export interface LedgerEpoch {
  epoch: number;
  /** The step of the epoch's last recorded batch: where a chart by step marks the epoch. */
  last_step: number;
  samples: number;
  flips: number;
  forgotten: number;
  learned: number;
  confidence_jumps: number;
  /** class -> samples predicted as it, gained (+) or lost (-) */
  class_changes: Record<string, number>;
  /** The epoch forgot unusually many samples. */
  burst: boolean;
}

export interface LedgerInfo {
  classes: number;
  class_names: string[] | null;
  samples: number;
  /** The run recorded thumbnails: a listed sample with a `position` has one. */
  sprites: boolean;
  /** The run's training dynamics have a fitted projection. */
  projection: boolean;
  epochs: LedgerEpoch[];
}

export type EventKind = "flips" | "forgotten" | "learned" | "confidence_jumps";

export interface LedgerSample {
  /** Its index in the training data set. */
  sample: number;
  label: number;
  aum: number;
  forgetting_events: number;
  mislabeled_score: number;
  /** Its position among the recorded dynamics samples (sprite, projection point); null if none. */
  position: number | null;
}

/** The samples behind one kind of event of an epoch, most likely mislabeled first. */
export interface EventSamples {
  epoch: number;
  kind: EventKind;
  count: number;
  samples: LedgerSample[];
}

/** The samples of one cell of an epoch's confusion matrix, most likely mislabeled first. */
export interface CellSamples {
  epoch: number;
  label: number;
  predicted: number;
  count: number;
  samples: LedgerSample[];
}

export interface Confusion {
  epoch: number;
  classes: number;
  /** rows: the target; columns: the predicted class */
  matrix: number[][];
}

export interface SampleHistory {
  sample: number;
  epochs: { epoch: number; target: number; predicted: number; right: boolean; probability: number }[];
}

/** An answer other than 2xx; `detail` is the server's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(detail);
  }
}

// ---- access token -------------------------------------------------------------------------

const TOKEN_KEY = "epochal.token";

/** Reads `?token=` from the page URL once, and keeps it for this tab. */
export function initToken(): void {
  const fromUrl = new URLSearchParams(window.location.search).get("token");
  if (fromUrl) sessionStorage.setItem(TOKEN_KEY, fromUrl);
}

function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Adds the token to a URL the browser fetches by itself (downloads), where no header can be set. */
export function withToken(url: string): string {
  const t = token();
  if (!t) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(t);
}

// Listeners told about a 401, so the shell can show its banner once instead of every page.
const unauthorizedListeners: (() => void)[] = [];
export function onUnauthorized(fn: () => void): void {
  unauthorizedListeners.push(fn);
}

// ---- requests -----------------------------------------------------------------------------

// Relative to the page, so a server mounted under a prefix works too; "/api" in the contract.
const BASE = "api";

type Query = Record<string, string | number | boolean | null | undefined | string[]>;

function url(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((item) => params.append(k, item));
    else params.append(k, String(v));
  }
  const qs = params.toString();
  return `${BASE}${path}${qs ? "?" + qs : ""}`;
}

/** A GET whose answer is bytes (binary arrays): the token and the errors handled as for JSON. */
async function requestBytes(path: string, opts: { query?: Query; signal?: AbortSignal } = {}): Promise<ArrayBuffer> {
  const headers: Record<string, string> = { Accept: "application/octet-stream" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const res = await fetch(url(path, opts.query), { headers, signal: opts.signal });
  if (!res.ok) {
    if (res.status === 401) unauthorizedListeners.forEach((fn) => fn());
    throw new ApiError(res.status, await errorDetail(res));
  }
  return res.arrayBuffer();
}

async function request<T>(method: string, path: string, opts: { query?: Query; body?: unknown; signal?: AbortSignal } = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url(path, opts.query), {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: opts.signal,
  });
  if (!res.ok) {
    if (res.status === 401) unauthorizedListeners.forEach((fn) => fn());
    throw new ApiError(res.status, await errorDetail(res));
  }
  return (await res.json()) as T;
}

async function errorDetail(res: Response): Promise<string> {
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { detail?: unknown };
    if (typeof body.detail === "string") return body.detail;
    // FastAPI's validation errors (422) are a list of {loc, msg}.
    if (Array.isArray(body.detail)) {
      return body.detail.map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).join(".")}: ${d.msg ?? ""}`).join("; ");
    }
  } catch {
    /* not JSON: fall through */
  }
  return `${res.status} ${res.statusText}${text ? ": " + text.slice(0, 200) : ""}`;
}

/**
 * Runs at most `size` tasks at once; the rest wait in order. It only guards against hundreds of keys:
 * the browser itself sends 6 requests at a time per server and queues the rest off the main thread,
 * so that requests keep going out while charts draw (a limit of 6 here made each wait for a draw).
 */
export class Limiter {
  private active = 0;
  private queue: (() => void)[] = [];
  constructor(private readonly size: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.size) await new Promise<void>((resolve) => this.queue.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

const seriesLimiter = new Limiter(32);

export interface SeriesQuery {
  key: string;
  x: XAxis;
  min?: number;
  max?: number;
  points?: number;
  /** A weight in [0, 1); 0 or absent: no `smoothed` in the answer. */
  smoothing?: number;
  smoothingMethod?: SmoothingMethod;
}

/** How the server smooths: time-weighted EMA (by the gap in steps) or TensorBoard's EMA per point. */
export type SmoothingMethod = "time_ema" | "ema";

export const api = {
  store: (signal?: AbortSignal) => request<StoreInfo>("GET", "/store", { signal }),

  /** A page of runs, filtered and sorted by the server. */
  runs: (query: RunPageQuery, signal?: AbortSignal) => request<RunList>("GET", "/runs", { query: { ...query }, signal }),

  /** The runs the filter selects, in groups of equal values of config keys, with each metric's mean and std. */
  runGroups: (query: RunGroupQuery, signal?: AbortSignal) =>
    request<RunGroups>("GET", "/run-groups", { query: { ...query }, signal }),

  /** The ids of every run the filter selects ("select all matching"). */
  runIds: (filter: RunFilter, signal?: AbortSignal) => request<RunIds>("GET", "/run-ids", { query: { ...filter }, signal }),

  run: (id: string, signal?: AbortSignal) => request<RunDetail>("GET", `/runs/${encodeURIComponent(id)}`, { signal }),

  updateRun: (id: string, body: { tags?: string[]; notes?: string }) =>
    request<RunDetail>("PATCH", `/runs/${encodeURIComponent(id)}`, { body }),

  deleteRun: (id: string) => request<{ deleted: string }>("DELETE", `/runs/${encodeURIComponent(id)}`),

  series: (run: string, q: SeriesQuery, signal?: AbortSignal) =>
    seriesLimiter.run(() => {
      // A page left while this waited in the queue: don't start the request at all.
      if (signal?.aborted) return Promise.reject(new DOMException("aborted", "AbortError"));
      return request<Series>("GET", `/runs/${encodeURIComponent(run)}/series`, {
        query: {
          key: q.key, x: q.x, min: q.min, max: q.max, points: q.points ?? 2000,
          ...(q.smoothing ? { smoothing: q.smoothing, smoothing_method: q.smoothingMethod } : {}),
        },
        signal,
      });
    }),

  /** Download link for the full-resolution CSV of `key` in `runs`. */
  seriesCsvUrl: (key: string, runs: string[]) => withToken(url("/series.csv", { key, run: runs })),

  dynamics: (run: string, signal?: AbortSignal) => request<DynamicsInfo>("GET", `/runs/${encodeURIComponent(run)}/dynamics`, { signal }),

  dynamicsSamples: (run: string, signal?: AbortSignal) =>
    request<SampleTable>("GET", `/runs/${encodeURIComponent(run)}/dynamics/samples`, { signal }),

  /** Samples `offset` to `offset + limit` of an epoch's coordinates: x, y, x, y... as float32 (NaN: none). */
  dynamicsCoords: (run: string, epoch: number, offset: number, limit: number, signal?: AbortSignal) =>
    requestBytes(`/runs/${encodeURIComponent(run)}/dynamics/epochs/${epoch}/coords.bin`, { query: { offset, limit }, signal })
      .then((bytes) => new Float32Array(bytes)),

  fitDynamics: (run: string) => request<FitProgress>("POST", `/runs/${encodeURIComponent(run)}/dynamics/fit`),

  backgroundUrl: (run: string, epoch: number) => withToken(url(`/runs/${encodeURIComponent(run)}/dynamics/epochs/${epoch}/background.png`)),

  ledger: (run: string, signal?: AbortSignal) => request<LedgerInfo>("GET", `/runs/${encodeURIComponent(run)}/ledger`, { signal }),

  ledgerEvents: (run: string, epoch: number, kind: EventKind, limit: number, signal?: AbortSignal) =>
    request<EventSamples>("GET", `/runs/${encodeURIComponent(run)}/ledger/events/${epoch}`, { query: { kind, limit }, signal }),

  /** The matrix only: each cell's samples come from ledgerCell, listed with their measures. */
  ledgerConfusion: (run: string, epoch: number, signal?: AbortSignal) =>
    request<Confusion>("GET", `/runs/${encodeURIComponent(run)}/ledger/confusion/${epoch}`, { query: { limit: 1 }, signal }),

  ledgerCell: (run: string, epoch: number, label: number, predicted: number, limit: number, signal?: AbortSignal) =>
    request<CellSamples>("GET", `/runs/${encodeURIComponent(run)}/ledger/confusion/${epoch}/cells/${label}/${predicted}`, { query: { limit }, signal }),

  ledgerSample: (run: string, sample: number, signal?: AbortSignal) =>
    request<SampleHistory>("GET", `/runs/${encodeURIComponent(run)}/ledger/samples/${sample}`, { signal }),

  spriteUrl: (run: string, index: number) => withToken(url(`/runs/${encodeURIComponent(run)}/dynamics/sprites/${index}.png`)),
};

export function isAbort(err: unknown): boolean {
  return err instanceof DOMException && err.name === "AbortError";
}

/** A message for any error, for banners and inline notes. */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) return err.detail;
  if (err instanceof Error) return err.message;
  return String(err);
}
