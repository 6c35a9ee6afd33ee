// The shell: token, top bar, banner, and one page at a time under #app.

import "./style.css";
import { api, initToken, onUnauthorized } from "./api";
import { h, replace } from "./dom";
import { mountCompare } from "./pages/compare";
import { mountRun } from "./pages/run";
import { mountRuns } from "./pages/runs";
import { href, onRoute, type Route } from "./router";
import { errorBox, showBanner } from "./ui";

export interface PageContext {
  /** Aborted when the page is left: fetches stop, timers clear. */
  signal: AbortSignal;
  /** Sets the breadcrumb after "epochal" and the tab title. */
  setCrumbs: (...crumbs: (string | [string, string])[]) => void;
}

initToken();

let unauthorizedShown = false;
onUnauthorized(() => {
  if (unauthorizedShown) return;
  unauthorizedShown = true;
  showBanner(h("span", null, "This dashboard needs its access token: open the URL that ", h("code", null, "epochal ui"), " printed."));
});

const app = document.getElementById("app")!;
let current: AbortController | null = null;

function setCrumbs(...crumbs: (string | [string, string])[]): void {
  const nav = document.getElementById("crumbs")!;
  replace(nav, crumbs.map((c) => [h("span", { class: "sep" }, "/"), typeof c === "string" ? h("span", null, c) : h("a", { href: c[1] }, c[0])]));
  const last = crumbs[crumbs.length - 1];
  document.title = last ? `${typeof last === "string" ? last : last[0]} · epochal` : "epochal";
}

function render(route: Route): void {
  current?.abort();
  current = new AbortController();
  const ctx: PageContext = { signal: current.signal, setCrumbs };
  replace(app);
  app.className = `page-${route.page}`;
  window.scrollTo(0, 0);
  switch (route.page) {
    case "runs":
      setCrumbs();
      mountRuns(app, ctx);
      break;
    case "run":
      mountRun(app, ctx, route.id, route.filter ?? "", route.ledger ?? null);
      break;
    case "dynamics":
      // WebGL scatter plots are for this page only: its code loads when it is opened.
      replace(app, h("div", { class: "loading-note" }, "Loading…"));
      import("./pages/dynamics").then(
        (page) => ctx.signal.aborted || page.mountDynamics(app, ctx, route.id, route.sample ?? null),
        (err) => ctx.signal.aborted || replace(app, errorBox(err, "Could not load the page")),
      );
      break;
    case "compare":
      mountCompare(app, ctx, route.runs, route.key, route.filter ?? "", { keys: route.group ?? [], band: route.band ?? "minmax" });
      break;
    case "missing":
      setCrumbs("not found");
      replace(app, h("div", { class: "error-box" }, `No page at #${route.hash}. `, h("a", { href: href({ page: "runs" }) }, "All runs")));
  }
}

async function loadStoreInfo(): Promise<void> {
  try {
    const info = await api.store();
    const el = document.getElementById("store-info")!;
    replace(el,
      info.read_only ? h("span", { class: "pill", title: "Tags, notes and deleting runs are disabled" }, "read-only") : null,
      h("span", { class: "store-path", title: info.path }, info.path),
      h("span", { class: "muted" }, ` · v${info.version}`),
    );
    document.body.classList.toggle("read-only", info.read_only);
  } catch {
    // The page itself shows the error (or the 401 banner); the top bar just stays empty.
  }
}

void loadStoreInfo();
onRoute(render);
