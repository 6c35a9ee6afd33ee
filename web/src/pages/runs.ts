// The runs page: a window onto every run. The server filters, sorts and pages (GET /api/runs); the
// page keeps only the rows in view (plus a margin) in the DOM, over a scroll area as tall as all the
// matching runs, and fetches pages of rows as they come into view. The list is of the runs started
// before the page was loaded (`as_of`): runs started since are announced, not slipped in.

import { api, ApiError, errorMessage, isAbort, type RunGroups, type RunList, type RunPageQuery, type RunRow, type Status } from "../api";
import { h, replace } from "../dom";
import { fmtConfig, fmtConfigShort, fmtDateTime, fmtDuration, fmtInt, fmtNum, fullNum } from "../format";
import { poll } from "../live";
import type { PageContext } from "../main";
import { picker } from "../picker";
import { href } from "../router";
import { errorBox, statusBadge, tagChip } from "../ui";

interface Prefs {
  q: string;
  project: string;
  tag: string;
  status: string;
  /** conditions as typed: `lr<0.01, valid/loss:best<0.3` */
  where: string;
  /** `col` as the server sorts: a run column, `config.<key>`, `<metric>:last` or `<metric>:best`. */
  sort: { col: string; order: "asc" | "desc" };
  /** null until the user picks: then defaults follow the store's keys. */
  configCols: string[] | null;
  metricCols: string[] | null;
  /** config keys whose equal values group the runs in the groups table; empty for none */
  groupBy: string[];
}

type Keys = Pick<RunList, "metric_keys" | "main_metrics" | "config_keys">;

const PREFS_KEY = "epochal.runsPage";
const STATUSES: Status[] = ["running", "finished", "failed", "interrupted", "crashed"];
/** Rows of the first request: a screenful, so that the first rows show at once. */
const FIRST_PAGE = 50;
/** Rows of each later request, fetched as they scroll into view. */
const PAGE = 200;
/** Rows kept in the DOM above and below the visible ones. */
const MARGIN = 20;
/** Each row's height in pixels (style.css keeps rows to one line): the scroll area is total × this. */
const ROW_HEIGHT = 33;
/** The most runs the compare page opens: it fetches every run's details and each key's curve per run. */
export const COMPARE_MAX = 50;
/** Without a running run in view, rows and the count of new runs are refreshed every this many polls. */
const IDLE_TICKS = 3;

// Kept for the session: going to a run and back should not lose the selection.
const selection = new Set<string>();

function loadPrefs(): Prefs {
  const defaults: Prefs = { q: "", project: "", tag: "", status: "", where: "", sort: { col: "started", order: "desc" }, configCols: null, metricCols: null, groupBy: [] };
  try {
    const saved = { ...defaults, ...(JSON.parse(localStorage.getItem(PREFS_KEY) ?? "{}") as Partial<Prefs>) };
    // Sorts saved by an older page (`{col: "c:lr", dir: 1}`) are not the server's: start over.
    if (saved.sort?.order !== "asc" && saved.sort?.order !== "desc") saved.sort = defaults.sort;
    if (typeof saved.where !== "string") saved.where = "";
    if (!Array.isArray(saved.groupBy)) saved.groupBy = [];
    return saved;
  } catch {
    return defaults;
  }
}

/** `lr<0.01, valid/loss:best<0.3` -> the server's `where` parameters. */
function conditions(text: string): string[] {
  return text.split(",").map((c) => c.trim()).filter(Boolean);
}

/** Up to 3 config keys whose values differ between the given runs, those most runs have first. */
function defaultConfig(keys: string[], runs: RunRow[]): string[] {
  const has = (k: string) => runs.filter((r) => k in r.config).length;
  return keys
    .filter((k) => new Set(runs.map((r) => JSON.stringify(r.config[k] ?? null))).size > 1)
    .sort((a, b) => has(b) - has(a) || a.localeCompare(b))
    .slice(0, 3);
}

export function mountRuns(root: HTMLElement, ctx: PageContext): void {
  const prefs = loadPrefs();
  const save = () => localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));

  // The list: rows by position among the matching runs, filled a page at a time.
  let asOf = Date.now() / 1000;
  let rows: (RunRow | undefined)[] = [];
  // The rows of the query before, shown in place until theirs arrive (a change of metric columns).
  let stale: (RunRow | undefined)[] = [];
  let total: number | null = null;
  let keys: Keys | null = null;
  let autoConfig: string[] | null = null;
  let failure: unknown = null;
  let query = new AbortController();
  let inFlight = new Set<number>();
  // The ids of the last "select all matching", while the filters stay as they were.
  let matching: string[] | null = null;
  ctx.signal.addEventListener("abort", () => query.abort(), { once: true });

  const configCols = () => prefs.configCols ?? autoConfig ?? [];
  // Until the user picks, the main metrics the server ranks for the store's runs (epochal.keys.main_metrics).
  const metricCols = () => prefs.metricCols ?? keys?.main_metrics ?? [];

  // ---- controls -----------------------------------------------------------------------------

  const search = h("input", { type: "search", class: "search", placeholder: "Filter by name, tag, notes, id…", value: prefs.q });
  let typing: number | undefined;
  search.addEventListener("input", () => {
    window.clearTimeout(typing);
    typing = window.setTimeout(() => ((prefs.q = search.value.trim()), save(), reload()), 250);
  });
  const where = h("input", { type: "search", class: "where", placeholder: "Conditions: lr<0.01, valid/loss:best<0.3", value: prefs.where, title: "Conditions on config values and metrics (key:last or key:best), separated by commas; Enter to apply" });
  where.addEventListener("change", () => {
    if (where.value.trim() === prefs.where) return;
    prefs.where = where.value.trim();
    save();
    reload();
  });
  const queryError = h("div", { class: "query-error", hidden: true });
  const projectSel = h("select", { title: "Project" });
  const tagSel = h("select", { title: "Tag" });
  const statusSel = h("select", { title: "Status" }, h("option", { value: "" }, "any status"), STATUSES.map((s) => h("option", { value: s }, s)));
  statusSel.value = prefs.status;
  fillSelect(projectSel, "any project", [], prefs.project);
  fillSelect(tagSel, "any tag", [], prefs.tag);
  for (const [sel, field] of [[projectSel, "project"], [tagSel, "tag"], [statusSel, "status"]] as const) {
    sel.addEventListener("change", () => ((prefs[field] = sel.value), save(), reload()));
  }
  const pickers = h("span", { class: "pickers" });
  const count = h("span", { class: "count-note" });
  const newRuns = h("button", { type: "button", class: "btn new-runs", hidden: true, onclick: () => showNewer() });
  const selectionNote = h("span", { class: "selection-note" });
  const compareBtn = h("a", { class: "btn primary disabled", href: "#/" }, "Compare");
  compareBtn.addEventListener("click", (e) => compareBtn.classList.contains("disabled") && e.preventDefault());

  const thead = h("thead");
  const tbody = h("tbody");
  const table = h("table", { class: "runs-table" }, thead, tbody);
  const note = h("div", { class: "table-note" }, h("div", { class: "loading-note" }, "Loading runs…"));
  const scroller = h("div", { class: "table-wrap runs-scroll" }, table, note);
  let frame = 0;
  const onScroll = () => {
    if (!frame) frame = requestAnimationFrame(() => ((frame = 0), renderRows(), fetchVisible()));
  };
  scroller.addEventListener("scroll", onScroll);
  window.addEventListener("resize", onScroll, { signal: ctx.signal });

  // The groups table: the matching runs in groups of equal values of the chosen config keys.
  const groupsPanel = h("div", { class: "groups-panel table-wrap", hidden: true });
  let groupsQuery = new AbortController();
  ctx.signal.addEventListener("abort", () => groupsQuery.abort(), { once: true });

  replace(root,
    h("div", { class: "page-head" }, h("h1", null, "Runs"), count, newRuns),
    h("div", { class: "filters" }, search, projectSel, tagSel, statusSel, pickers, h("span", { class: "spacer" }), selectionNote, compareBtn),
    h("div", { class: "filters" }, where),
    queryError,
    groupsPanel,
    scroller,
  );

  /** Fetches and shows the groups table (or hides it when no key groups the runs). */
  async function loadGroups(): Promise<void> {
    groupsQuery.abort();
    groupsQuery = new AbortController();
    const chosen = prefs.groupBy.filter((k) => !keys || keys.config_keys.includes(k));
    groupsPanel.hidden = chosen.length === 0;
    if (!chosen.length) return;
    const metrics = metricCols().map((k) => `${k}:best`);
    try {
      const found = await api.runGroups({ ...filter(), group_by: chosen, metric: metrics }, groupsQuery.signal);
      renderGroups(found);
    } catch (e) {
      if (!isAbort(e)) replace(groupsPanel, errorBox(errorMessage(e)));
    }
  }

  function renderGroups(found: RunGroups): void {
    const stat = (s: { mean: number | null; std: number | null } | undefined) =>
      s?.mean == null ? "—" : `${fmtNum(s.mean)} ± ${fmtNum(s.std ?? 0)}`;
    replace(groupsPanel, h("table", { class: "groups-table" },
      h("thead", null, h("tr", null,
        found.group_by.map((k) => h("th", null, shortKey(k))),
        h("th", { class: "num" }, "runs"),
        found.metrics.map((m) => h("th", { class: "num", title: `${m}: mean ± standard deviation over the group's runs` }, `${shortKey(m.replace(/:best$/, ""))} (mean ± std)`)),
      )),
      h("tbody", null, found.groups.map((g) => h("tr", { dataset: { group: JSON.stringify(g.values) } },
        g.values.map((v) => h("td", { title: fmtConfig(v ?? undefined) }, fmtConfigShort(v ?? undefined))),
        h("td", { class: "num" }, fmtInt(g.count)),
        found.metrics.map((m) => h("td", { class: "num", title: fullNum(g.stats[m]?.mean) }, stat(g.stats[m]))),
      ))),
    ));
  }

  function fillSelect(sel: HTMLSelectElement, anyLabel: string, values: string[], current: string): void {
    const all = [...new Set([...values, ...(current ? [current] : [])])].sort();
    replace(sel, h("option", { value: "" }, anyLabel), all.map((v) => h("option", { value: v }, v)));
    sel.value = current;
  }

  async function loadStoreLists(): Promise<void> {
    const info = await api.store(ctx.signal);
    fillSelect(projectSel, "any project", info.projects, prefs.project);
    fillSelect(tagSel, "any tag", info.tags, prefs.tag);
  }

  function renderPickers(): void {
    if (!keys) return;
    replace(pickers,
      picker({ label: "Config columns", options: keys.config_keys, selected: configCols(), onChange: (cols) => ((prefs.configCols = cols), save(), renderHead(), renderRows()) }),
      picker({ label: "Metric columns", options: keys.metric_keys, selected: metricCols(), onChange: (cols) => ((prefs.metricCols = cols), save(), reload(true)) }),
      picker({ label: "Group by", options: keys.config_keys, selected: prefs.groupBy, onChange: (cols) => ((prefs.groupBy = cols), save(), void loadGroups()) }),
    );
  }

  // ---- fetching -----------------------------------------------------------------------------

  const filtered = () => Boolean(prefs.q || prefs.project || prefs.tag || prefs.status || conditions(prefs.where).length);

  function filter() {
    return { q: prefs.q, project: prefs.project, tag: prefs.tag, status: prefs.status, where: conditions(prefs.where), as_of: asOf };
  }

  function pageQuery(offset: number, limit: number): RunPageQuery {
    return { ...filter(), sort: prefs.sort.col, order: prefs.sort.order, offset, limit, metric: metricCols() };
  }

  /** Starts the list over: a new query (stale requests aborted), from the top unless `keepScroll`. */
  function reload(keepScroll = false): void {
    query.abort();
    query = new AbortController();
    inFlight = new Set();
    stale = keepScroll ? rows : [];
    rows = [];
    failure = null;
    matching = null;
    if (!keepScroll) {
      total = null;
      scroller.scrollTop = 0;
    }
    void fetchRows(0, FIRST_PAGE, query.signal);
    void loadGroups();
    renderHead();
    renderRows();
  }

  async function fetchRows(offset: number, limit: number, signal: AbortSignal): Promise<void> {
    try {
      const wanted = metricCols();
      const page = await api.runs(pageQuery(offset, limit), signal);
      if (signal.aborted) return;
      page.runs.forEach((r, i) => (rows[offset + i] = r));
      accept(page);
      // First visit: the default metric columns depend on which keys exist, so ask again with them.
      if (prefs.metricCols === null && page.main_metrics.join() !== wanted.join()) return reload(true);
      renderRows();
      fetchVisible();
    } catch (err) {
      if (isAbort(err) || signal.aborted) return;
      failure = err;
      renderRows();
    }
  }

  function accept(page: RunList): void {
    total = page.total;
    rows.length = Math.min(rows.length, total);
    failure = null;
    setNewer(page.newer);
    const next: Keys = { metric_keys: page.metric_keys, main_metrics: page.main_metrics, config_keys: page.config_keys };
    const changed = !keys || keys.config_keys.join() !== next.config_keys.join() || keys.metric_keys.join() !== next.metric_keys.join();
    keys = next;
    if (autoConfig === null && page.runs.length) autoConfig = defaultConfig(keys.config_keys, page.runs);
    if (changed) renderPickers();
    renderHead();
  }

  /** The positions in view, with the margin. */
  function windowRange(): [number, number] {
    const first = Math.floor(scroller.scrollTop / ROW_HEIGHT);
    // Before the rows are in, the scroll area is only as tall as its note: count on the window's height.
    const shown = Math.ceil(Math.max(scroller.clientHeight, window.innerHeight) / ROW_HEIGHT) + 1;
    return [Math.max(0, first - MARGIN), Math.min(total ?? 0, first + shown + MARGIN)];
  }

  /** Fetches the pages of the rows in view that are neither here nor on their way. */
  function fetchVisible(): void {
    if (total === null || failure) return;
    const [start, end] = windowRange();
    for (let p = Math.floor(start / PAGE); p * PAGE < end; p++) {
      const from = Math.max(start, p * PAGE);
      const to = Math.min(end, (p + 1) * PAGE);
      let missing = false;
      for (let i = from; i < to && !missing; i++) missing = rows[i] === undefined;
      if (!missing || inFlight.has(p)) continue;
      const pages = inFlight;
      pages.add(p);
      void fetchRows(p * PAGE, PAGE, query.signal).finally(() => pages.delete(p));
    }
  }

  /** Fetches the rows in view again: their status and metrics change while runs run; `newer` too. */
  async function refreshVisible(): Promise<void> {
    if (total === null || failure) return;
    const [start, end] = windowRange();
    const signal = query.signal;
    const page = await api.runs(pageQuery(start, Math.max(1, end - start)), signal);
    if (signal.aborted) return;
    page.runs.forEach((r, i) => (rows[start + i] = r));
    accept(page);
    renderRows();
  }

  function setNewer(n: number): void {
    newRuns.hidden = n <= 0;
    newRuns.textContent = `${fmtInt(n)} new run${n === 1 ? "" : "s"} — show`;
  }

  function showNewer(): void {
    asOf = Date.now() / 1000;
    setNewer(0);
    void loadStoreLists().catch(() => undefined);
    reload();
  }

  // ---- the table ----------------------------------------------------------------------------

  function sortBy(col: string, firstOrder: "asc" | "desc"): void {
    const active = prefs.sort.col === col;
    prefs.sort = { col, order: active ? (prefs.sort.order === "asc" ? "desc" : "asc") : firstOrder };
    save();
    reload();
  }

  /** A metric column starts with the best first: the server's mode of the key, as the rows carry it. */
  function bestFirst(key: string): "asc" | "desc" {
    const cell = rows.find((r) => r?.metrics[key])?.metrics[key];
    return cell?.mode === "max" ? "desc" : "asc";
  }

  function renderHead(): void {
    const cfg = configCols();
    const met = metricCols();
    const th = (col: string | null, label: string, cls = "", title = label, firstOrder: () => "asc" | "desc" = () => "asc") => {
      if (col === null) return h("th", { class: cls, title }, label);
      const active = prefs.sort.col === col;
      const sort = () => sortBy(col, firstOrder());
      return h("th", {
        class: `sortable ${cls}${active ? " sorted" : ""}`,
        title: `${title} (click to sort)`,
        tabIndex: 0,
        dataset: { sort: col },
        "aria-sort": active ? (prefs.sort.order === "asc" ? "ascending" : "descending") : undefined,
        onclick: sort,
        onkeydown: (e: KeyboardEvent) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), sort()),
      }, label, h("span", { class: "sort-arrow" }, active ? (prefs.sort.order === "asc" ? "▲" : "▼") : ""));
    };
    const allBox = h("input", { type: "checkbox", title: "Select all matching runs", checked: allMatchingSelected() });
    allBox.addEventListener("change", () => void (allBox.checked ? selectAllMatching() : clearMatching()));
    const span = met.length ? 2 : 1;
    const spanned = (cell: HTMLTableCellElement) => ((cell.rowSpan = span), cell);
    const head1 = h("tr", null,
      spanned(h("th", { class: "check" }, allBox)),
      [th("name", "Name"), th("project", "Project"), th("status", "Status"), th(null, "Tags"), th("started", "Started", "", "Started", () => "desc"),
        th("duration", "Duration", "num"), th("steps", "Steps", "num")].map(spanned),
      cfg.map((k) => spanned(th(`config.${k}`, shortKey(k), "num cfg", k))),
      met.map((k) => h("th", { class: "metric-head", colSpan: 2, title: k }, k)),
    );
    const head2 = met.length ? h("tr", null, met.map((k) => [
      th(`${k}:last`, "last", "num sub", `${k}: last value`, () => bestFirst(k)),
      th(`${k}:best`, "best", "num sub", `${k}: best value`, () => bestFirst(k)),
    ])) : null;
    replace(thead, head1, head2);
  }

  function columnCount(): number {
    return 8 + configCols().length + 2 * metricCols().length;
  }

  function renderRows(): void {
    renderCount();
    updateSelection();
    if (failure) {
      replace(tbody);
      if (failure instanceof ApiError && failure.status === 422) {
        queryError.hidden = false;
        queryError.textContent = failure.detail;
        replace(note, h("div", { class: "empty-note" }, "Fix the filters above to list runs."));
      } else {
        queryError.hidden = true;
        replace(note, errorBox(failure, "Could not load the runs"));
      }
      return;
    }
    queryError.hidden = true;
    if (total === null) {
      replace(tbody);
      replace(note, h("div", { class: "loading-note" }, "Loading runs…"));
      return;
    }
    if (total === 0) {
      replace(tbody);
      replace(note, filtered()
        ? h("div", { class: "empty-note" }, "No run matches these filters.")
        : h("div", { class: "empty-note" },
          h("p", null, "No runs in this store yet."),
          h("p", { class: "muted" }, "Record one with ", h("code", null, "epochal demo"), " or ", h("code", null, 'with epochal.start(project="…") as run: run.log({...})'), "."),
        ));
      return;
    }
    replace(note);
    const [start, end] = windowRange();
    const cols = columnCount();
    const cfg = configCols();
    const met = metricCols();
    const spacer = (n: number) => (n > 0 ? h("tr", { class: "spacer", style: `height: ${n * ROW_HEIGHT}px` }, h("td", { colSpan: cols })) : null);
    const shown: HTMLElement[] = [];
    for (let i = start; i < end; i++) {
      const r = rows[i] ?? stale[i];
      shown.push(r ? row(r, cfg, met) : h("tr", { class: "placeholder", style: `height: ${ROW_HEIGHT}px` }, h("td", { colSpan: cols }, "…")));
    }
    replace(tbody, spacer(start), shown, spacer(total - end));
    table.dataset.total = String(total);
  }

  function row(r: RunRow, cfg: string[], met: string[]): HTMLElement {
    const box = h("input", { type: "checkbox", checked: selection.has(r.id), "aria-label": `Select ${r.name}` });
    box.addEventListener("change", () => {
      if (box.checked) selection.add(r.id);
      else selection.delete(r.id);
      tr.classList.toggle("selected", box.checked);
      updateSelection();
    });
    const tr = h("tr", { class: `${selection.has(r.id) ? "selected" : ""} row-${r.status}`, style: `height: ${ROW_HEIGHT}px`, dataset: { id: r.id } },
      h("td", { class: "check" }, box),
      h("td", { class: "name" }, h("a", { href: href({ page: "run", id: r.id }), title: r.id }, r.name)),
      h("td", null, r.project),
      h("td", null, statusBadge(r.status)),
      h("td", { class: "tags" }, r.tags.map((t) => tagChip(t))),
      h("td", { class: "nowrap" }, fmtDateTime(r.started)),
      h("td", { class: "num" }, fmtDuration(r.duration)),
      h("td", { class: "num" }, fmtInt(r.steps)),
      cfg.map((k) => h("td", { class: "num cfg", title: `${k} = ${fmtConfig(r.config[k])}` }, fmtConfigShort(r.config[k]))),
      met.map((k) => {
        const m = r.metrics[k];
        return [h("td", { class: "num metric" }, fmtNum(m?.last)), h("td", { class: "num metric" + (m?.best != null ? " best" : ""), title: m ? `best (${m.mode}) of ${fmtInt(m.count)} values` : "" }, fmtNum(m?.best))];
      }),
    );
    return tr;
  }

  function renderCount(): void {
    if (total === null) {
      count.textContent = "";
      return;
    }
    count.textContent = `${fmtInt(total)} ${filtered() ? "matching " : ""}run${total === 1 ? "" : "s"}`;
  }

  // ---- selection ----------------------------------------------------------------------------

  function allMatchingSelected(): boolean {
    return matching !== null && matching.length > 0 && matching.every((id) => selection.has(id));
  }

  async function selectAllMatching(): Promise<void> {
    const signal = query.signal;
    try {
      const found = await api.runIds(filter(), signal);
      if (signal.aborted) return;
      matching = found.ids;
      found.ids.forEach((id) => selection.add(id));
    } catch (err) {
      if (isAbort(err) || signal.aborted) return;
      queryError.hidden = false;
      queryError.textContent = `Could not select the matching runs: ${errorMessage(err)}`;
      return;
    }
    renderHead();
    renderRows();
  }

  function clearMatching(): void {
    (matching ?? []).forEach((id) => selection.delete(id));
    matching = null;
    renderHead();
    renderRows();
  }

  function clearSelection(): void {
    selection.clear();
    matching = null;
    renderHead();
    renderRows();
  }

  function updateSelection(): void {
    const ids = [...selection];
    const n = ids.length;
    const parts: (HTMLElement | string)[] = [];
    if (n) parts.push(h("span", null, `${fmtInt(n)} selected`), h("button", { type: "button", class: "link-btn clear-selection", onclick: clearSelection }, "clear"));
    if (total && !allMatchingSelected()) {
      parts.push(h("button", { type: "button", class: "link-btn select-all", onclick: () => void selectAllMatching() }, `select all ${fmtInt(total)} matching`));
    }
    replace(selectionNote, parts);
    const tooMany = n > COMPARE_MAX;
    compareBtn.classList.toggle("disabled", n < 2 || tooMany);
    compareBtn.textContent = n >= 2 && !tooMany ? `Compare ${n}` : "Compare";
    compareBtn.title = n < 2 ? "Select two or more runs" : tooMany ? `Compare takes up to ${COMPARE_MAX} runs: ${fmtInt(n)} are selected` : "";
    compareBtn.href = n >= 2 && !tooMany ? href({ page: "compare", runs: ids, key: null }) : "#/";
    selectionNote.classList.toggle("too-many", tooMany);
    if (tooMany) selectionNote.append(h("span", { class: "compare-limit" }, ` · compare takes up to ${COMPARE_MAX} runs`));
  }

  // ---- start, and follow -------------------------------------------------------------------

  void loadStoreLists().catch(() => undefined);  // the table shows the error, if the server has one
  reload();
  // Every 2 s while a run in view is running; otherwise now and then, to count runs started meanwhile.
  let idleTicks = 0;
  poll(async () => {
    // A server that failed (restarting, say) is asked again; a query it refused (422) waits for an edit.
    if (failure && !(failure instanceof ApiError && failure.status === 422)) return (reload(true), true);
    const [start, end] = windowRange();
    const running = rows.slice(start, end).some((r) => r?.status === "running");
    if (running || ++idleTicks >= IDLE_TICKS) {
      idleTicks = 0;
      await refreshVisible();
    }
    return true;
  }, ctx.signal);
}

function shortKey(key: string): string {
  const parts = key.split(".");
  return parts.length > 2 ? "…" + parts.slice(-2).join(".") : key;
}
