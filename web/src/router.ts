// Hash routes: #/ (runs), #/run/<id>, #/run/<id>/dynamics, #/compare?runs=<id>,<id>&key=<key>; the run
// and compare pages keep their key filter as &filter=<text>; the compare page its grouping as
// &group=<key>,<key>&band=std.
// Hash routing needs nothing from the server: any static file server can serve the built UI.

export type Route =
  | { page: "runs" }
  | { page: "run"; id: string; filter?: string | null }
  | { page: "dynamics"; id: string }
  | { page: "compare"; runs: string[]; key: string | null; filter?: string | null; group?: string[]; band?: Band }
  | { page: "missing"; hash: string };

/** What a group's band spans around its mean line: its runs' minimum to maximum, or one standard deviation. */
export type Band = "minmax" | "std";

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?", 2);
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: "runs" };
  if (parts[0] === "run" && parts.length === 2) return { page: "run", id: parts[1], filter: params.get("filter") || null };
  if (parts[0] === "run" && parts.length === 3 && parts[2] === "dynamics") return { page: "dynamics", id: parts[1] };
  if (parts[0] === "compare" && parts.length === 1) {
    const runs = (params.get("runs") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
    const group = (params.get("group") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
    const band: Band = params.get("band") === "std" ? "std" : "minmax";
    return { page: "compare", runs: [...new Set(runs)], key: params.get("key") || null, filter: params.get("filter") || null, group, band };
  }
  return { page: "missing", hash: raw };
}

export function href(route: Route): string {
  switch (route.page) {
    case "runs":
      return "#/";
    case "run":
      return `#/run/${encodeURIComponent(route.id)}` + (route.filter ? `?filter=${encodeURIComponent(route.filter)}` : "");
    case "dynamics":
      return `#/run/${encodeURIComponent(route.id)}/dynamics`;
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
