// Hash routes: #/ (runs), #/run/<id>, #/run/<id>/dynamics, #/compare?runs=<id>,<id>&key=<key>; the run
// and compare pages keep their key filter as &filter=<text>; the compare page its grouping as
// &group=<key>,<key>&band=std. The run page keeps its events panel as &ledger=<epoch>&kind=<kind>
// (&cell=<label>,<predicted> in the confusion matrix) and &sample=<index>; the dynamics page its pinned
// sample as ?sample=<position>.
// Hash routing needs nothing from the server: any static file server can serve the built UI.

export type Route =
  | { page: "runs" }
  | { page: "run"; id: string; filter?: string | null; ledger?: LedgerState | null }
  | { page: "dynamics"; id: string; sample?: number | null }
  | { page: "compare"; runs: string[]; key: string | null; filter?: string | null; group?: string[]; band?: Band }
  | { page: "missing"; hash: string };

/** What the run page's events panel shows: a kind of event of an epoch, or its confusion matrix (and a cell). */
export type LedgerTab = "flips" | "forgotten" | "learned" | "confidence_jumps" | "confusion";
const LEDGER_TABS: LedgerTab[] = ["flips", "forgotten", "learned", "confidence_jumps", "confusion"];

export interface LedgerState {
  epoch: number;
  tab: LedgerTab;
  /** The confusion matrix's chosen cell: [label, predicted]. */
  cell: [number, number] | null;
  /** The sample (its index in the data set) whose history is open. */
  sample: number | null;
}

/** What a group's band spans around its mean line: its runs' minimum to maximum, or one standard deviation. */
export type Band = "minmax" | "std";

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?", 2);
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: "runs" };
  if (parts[0] === "run" && parts.length === 2) return { page: "run", id: parts[1], filter: params.get("filter") || null, ledger: ledgerState(params) };
  if (parts[0] === "run" && parts.length === 3 && parts[2] === "dynamics") return { page: "dynamics", id: parts[1], sample: wholeNumber(params.get("sample")) };
  if (parts[0] === "compare" && parts.length === 1) {
    const runs = (params.get("runs") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
    const group = (params.get("group") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
    const band: Band = params.get("band") === "std" ? "std" : "minmax";
    return { page: "compare", runs: [...new Set(runs)], key: params.get("key") || null, filter: params.get("filter") || null, group, band };
  }
  return { page: "missing", hash: raw };
}

/** A whole number >= 0 from the address, or null. */
function wholeNumber(text: string | null): number | null {
  return text !== null && /^\d{1,15}$/.test(text) ? Number(text) : null;
}

function ledgerState(params: URLSearchParams): LedgerState | null {
  const epoch = wholeNumber(params.get("ledger"));
  if (epoch === null) return null;
  const kind = params.get("kind") as LedgerTab | null;
  const tab = kind && LEDGER_TABS.includes(kind) ? kind : "forgotten";
  const [label, predicted] = (params.get("cell") ?? "").split(",").map(wholeNumber);
  const cell: [number, number] | null = tab === "confusion" && label != null && predicted != null ? [label, predicted] : null;
  return { epoch, tab, cell, sample: wholeNumber(params.get("sample")) };
}

function ledgerQuery(state: LedgerState | null | undefined): string {
  if (!state) return "";
  let q = `ledger=${state.epoch}&kind=${state.tab}`;
  if (state.tab === "confusion" && state.cell) q += `&cell=${state.cell[0]},${state.cell[1]}`;
  if (state.sample !== null) q += `&sample=${state.sample}`;
  return q;
}

export function href(route: Route): string {
  switch (route.page) {
    case "runs":
      return "#/";
    case "run": {
      const query = [route.filter ? `filter=${encodeURIComponent(route.filter)}` : "", ledgerQuery(route.ledger)].filter(Boolean).join("&");
      return `#/run/${encodeURIComponent(route.id)}` + (query ? `?${query}` : "");
    }
    case "dynamics":
      return `#/run/${encodeURIComponent(route.id)}/dynamics` + (route.sample != null ? `?sample=${route.sample}` : "");
    case "compare": {
      // Commas stay readable in the address bar; ids never contain them.
      let h = `#/compare?runs=${route.runs.map(encodeURIComponent).join(",")}`;
      if (route.key) h += `&key=${encodeURIComponent(route.key)}`;
      if (route.filter) h += `&filter=${encodeURIComponent(route.filter)}`;
      if (route.group?.length) h += `&group=${route.group.map(encodeURIComponent).join(",")}`;
      if (route.group?.length && route.band === "std") h += "&band=std";
      return h;
    }
    case "missing":
      return `#${route.hash}`;
  }
}

/** Rewrites the hash without a navigation (no page rebuild, no history entry): a page's own state. */
export function replaceRoute(route: Route): void {
  history.replaceState(history.state, "", href(route));
}

export function onRoute(render: (route: Route) => void): void {
  window.addEventListener("hashchange", () => render(parseHash(location.hash)));
  render(parseHash(location.hash));
}
