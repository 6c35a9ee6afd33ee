// The runs page: every run in a sortable, filterable table with chosen config and metric columns.

import { api, type RunList, type RunRow, type Status } from "../api";
import { h, replace } from "../dom";
import { compareValues, fmtConfig, fmtDateTime, fmtDuration, fmtInt, fmtNum } from "../format";
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
  sort: { col: string; dir: 1 | -1 };
  /** null until the user picks: then defaults follow the store's keys. */
  configCols: string[] | null;
  metricCols: string[] | null;
}

const PREFS_KEY = "epochal.runsPage";
const STATUSES: Status[] = ["running", "finished", "failed", "interrupted", "crashed"];
// Kept for the session: going to a run and back should not lose the selection.
const selection = new Set<string>();

function loadPrefs(): Prefs {
  const defaults: Prefs = { q: "", project: "", tag: "", status: "", sort: { col: "started", dir: -1 }, configCols: null, metricCols: null };
  try {
    return { ...defaults, ...(JSON.parse(localStorage.getItem(PREFS_KEY) ?? "{}") as Partial<Prefs>) };
  } catch {
    return defaults;
  }
}

/** Up to 3 config keys whose values differ between runs, those most runs have first. */
function defaultConfig(list: RunList): string[] {
  const has = (k: string) => list.runs.filter((r) => k in r.config).length;
  return list.config_keys
    .filter((k) => new Set(list.runs.map((r) => JSON.stringify(r.config[k] ?? null))).size > 1)
    .sort((a, b) => has(b) - has(a) || a.localeCompare(b))
    .slice(0, 3);
}

export function mountRuns(root: HTMLElement, ctx: PageContext): void {
  const prefs = loadPrefs();
  let list: RunList | null = null;
  const save = () => localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
  const configCols = () => prefs.configCols ?? (list ? defaultConfig(list) : []);
  // Until the user picks, the main metrics the server ranks for the listed runs (epochal.keys.main_metrics).
  const metricCols = () => prefs.metricCols ?? (list ? list.main_metrics : []);

  const search = h("input", { type: "search", class: "search", placeholder: "Filter by name, tag, notes, id…", value: prefs.q });
  search.addEventListener("input", () => ((prefs.q = search.value), save(), renderTable()));
  const projectSel = h("select", { title: "Project" });
  const tagSel = h("select", { title: "Tag" });
  const statusSel = h("select", { title: "Status" }, h("option", { value: "" }, "any status"), STATUSES.map((s) => h("option", { value: s }, s)));
  statusSel.value = prefs.status;
  fillSelect(projectSel, "any project", [], prefs.project);
  fillSelect(tagSel, "any tag", [], prefs.tag);
  for (const [sel, field] of [[projectSel, "project"], [tagSel, "tag"], [statusSel, "status"]] as const) {
    sel.addEventListener("change", () => ((prefs[field] = sel.value), save(), renderTable()));
  }
  const pickers = h("span", { class: "pickers" });
  const count = h("span", { class: "count-note" });
  const compareBtn = h("a", { class: "btn primary disabled", href: "#/" }, "Compare");
  compareBtn.addEventListener("click", (e) => compareBtn.classList.contains("disabled") && e.preventDefault());
  const table = h("div", { class: "table-wrap" }, h("div", { class: "loading-note" }, "Loading runs…"));

  replace(root,
    h("div", { class: "page-head" }, h("h1", null, "Runs"), count),
    h("div", { class: "filters" }, search, projectSel, tagSel, statusSel, pickers, h("span", { class: "spacer" }), compareBtn),
    table,
  );

  function fillSelect(sel: HTMLSelectElement, anyLabel: string, values: string[], current: string): void {
    const all = [...new Set([...values, ...(current ? [current] : [])])].sort();
    replace(sel, h("option", { value: "" }, anyLabel), all.map((v) => h("option", { value: v }, v)));
    sel.value = current;
  }

  function renderPickers(): void {
    if (!list) return;
    replace(pickers,
      picker({ label: "Config columns", options: list.config_keys, selected: configCols(), onChange: (cols) => ((prefs.configCols = cols), save(), renderTable()) }),
      picker({ label: "Metric columns", options: list.metric_keys, selected: metricCols(), onChange: (cols) => ((prefs.metricCols = cols), save(), void refresh()) }),
    );
  }

  function visibleRuns(): RunRow[] {
    if (!list) return [];
    const words = prefs.q.toLowerCase().split(/\s+/).filter(Boolean);
    const rows = list.runs.filter((r) => {
      if (prefs.project && r.project !== prefs.project) return false;
      if (prefs.tag && !r.tags.includes(prefs.tag)) return false;
      if (prefs.status && r.status !== prefs.status) return false;
      const text = [r.name, r.id, r.notes, ...r.tags].join(" ").toLowerCase();
      return words.every((w) => text.includes(w));
    });
    const get = sortValue(prefs.sort.col);
    return rows.sort((a, b) => compareValues(get(a), get(b), prefs.sort.dir));
  }

  function renderTable(): void {
    if (!list) return;
    const rows = visibleRuns();
    count.textContent = `${rows.length} of ${list.runs.length} run${list.runs.length === 1 ? "" : "s"}`;
    updateCompare();
    if (!list.runs.length) {
      replace(table, h("div", { class: "empty-note" },
        h("p", null, "No runs in this store yet."),
        h("p", { class: "muted" }, "Record one with ", h("code", null, "epochal demo"), " or ", h("code", null, 'with epochal.start(project="…") as run: run.log({...})'), "."),
      ));
      return;
    }
    const cfg = configCols();
    const met = metricCols();
    const th = (col: string, label: string, cls = "", title = label) => {
      const active = prefs.sort.col === col;
      const sort = () => {
        // A new column starts ascending, except dates: the newest first is what one wants.
        prefs.sort = { col, dir: active ? ((-prefs.sort.dir) as 1 | -1) : col === "started" ? -1 : 1 };
        save();
        renderTable();
      };
      return h("th", {
        class: `sortable ${cls}${active ? " sorted" : ""}`,
        title: `${title} (click to sort)`,
        tabIndex: 0,
        "aria-sort": active ? (prefs.sort.dir === 1 ? "ascending" : "descending") : undefined,
        onclick: sort,
        onkeydown: (e: KeyboardEvent) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), sort()),
      }, label, h("span", { class: "sort-arrow" }, active ? (prefs.sort.dir === 1 ? "▲" : "▼") : ""));
    };
    const allBox = h("input", { type: "checkbox", title: "Select all shown", checked: rows.length > 0 && rows.every((r) => selection.has(r.id)) });
    allBox.addEventListener("change", () => {
      rows.forEach((r) => (allBox.checked ? selection.add(r.id) : selection.delete(r.id)));
      renderTable();
    });
    const hasMetrics = met.length > 0;
    const head1 = h("tr", null,
      h("th", { class: "check", rowSpan: hasMetrics ? 2 : 1 }, allBox),
      [th("name", "Name"), th("project", "Project"), th("status", "Status"), th("tags", "Tags"), th("started", "Started"), th("duration", "Duration", "num"), th("steps", "Steps", "num")]
        .map((cell) => ((cell.rowSpan = hasMetrics ? 2 : 1), cell)),
      cfg.map((k) => {
        const cell = th(`c:${k}`, shortKey(k), "num cfg", k);
        cell.rowSpan = hasMetrics ? 2 : 1;
        return cell;
      }),
      met.map((k) => h("th", { class: "metric-head", colSpan: 2, title: k }, k)),
    );
    const head2 = hasMetrics ? h("tr", null, met.map((k) => [th(`m:${k}:last`, "last", "num sub", `${k}: last value`), th(`m:${k}:best`, "best", "num sub", `${k}: best value`)])) : null;

    const body = rows.map((r) => {
      const box = h("input", { type: "checkbox", checked: selection.has(r.id), "aria-label": `Select ${r.name}` });
      box.addEventListener("change", () => {
        if (box.checked) selection.add(r.id);
        else selection.delete(r.id);
        tr.classList.toggle("selected", box.checked);
        allBox.checked = rows.every((x) => selection.has(x.id));
        updateCompare();
      });
      const tr = h("tr", { class: `${selection.has(r.id) ? "selected" : ""} row-${r.status}`, dataset: { id: r.id } },
        h("td", { class: "check" }, box),
        h("td", { class: "name" }, h("a", { href: href({ page: "run", id: r.id }), title: r.id }, r.name)),
        h("td", null, r.project),
        h("td", null, statusBadge(r.status)),
        h("td", { class: "tags" }, r.tags.map((t) => tagChip(t))),
        h("td", { class: "nowrap" }, fmtDateTime(r.started)),
        h("td", { class: "num" }, fmtDuration(r.duration)),
        h("td", { class: "num" }, fmtInt(r.steps)),
        cfg.map((k) => h("td", { class: "num cfg", title: `${k} = ${fmtConfig(r.config[k])}` }, fmtConfig(r.config[k]))),
        met.map((k) => {
          const m = r.metrics[k];
          return [h("td", { class: "num metric" }, fmtNum(m?.last)), h("td", { class: "num metric" + (m?.best != null ? " best" : ""), title: m ? `best (${m.mode}) of ${fmtInt(m.count)} values` : "" }, fmtNum(m?.best))];
        }),
      );
      return tr;
    });
    replace(table, h("table", { class: "runs-table" }, h("thead", null, head1, head2), h("tbody", null, body)),
      rows.length ? null : h("div", { class: "empty-note" }, "No run matches these filters."));
  }

  function updateCompare(): void {
    const ids = (list?.runs ?? []).filter((r) => selection.has(r.id)).map((r) => r.id);
    compareBtn.classList.toggle("disabled", ids.length < 2);
    compareBtn.textContent = ids.length >= 2 ? `Compare ${ids.length}` : "Compare";
    compareBtn.title = ids.length < 2 ? "Select two or more runs" : "";
    compareBtn.href = ids.length >= 2 ? href({ page: "compare", runs: ids, key: null }) : "#/";
  }

  async function refresh(): Promise<void> {
    const wanted = metricCols();
    let next = await api.runs(wanted, ctx.signal);
    // First visit: the default metric columns depend on which keys exist, so ask again with them.
    if (prefs.metricCols === null && !list) {
      const defaults = next.main_metrics;
      if (defaults.join() !== wanted.join()) next = await api.runs(defaults, ctx.signal);
    }
    const keysChanged = !list || list.config_keys.join() !== next.config_keys.join() || list.metric_keys.join() !== next.metric_keys.join();
    list = next;
    // Selected runs that were deleted elsewhere must not end up in a comparison.
    const ids = new Set(list.runs.map((r) => r.id));
    [...selection].forEach((id) => ids.has(id) || selection.delete(id));
    fillSelect(projectSel, "any project", [...new Set(list.runs.map((r) => r.project))], prefs.project);
    fillSelect(tagSel, "any tag", [...new Set(list.runs.flatMap((r) => r.tags))], prefs.tag);
    if (keysChanged) renderPickers();
    renderTable();
  }

  const running = () => list?.runs.some((r) => r.status === "running") ?? false;
  refresh()
    .catch((err) => {
      if (!ctx.signal.aborted) replace(table, errorBox(err, "Could not load the runs"));
    })
    .finally(() => {
      // Every 2 s while something runs; otherwise now and then, to notice runs started meanwhile.
      let idleTicks = 0;
      poll(async () => {
        if (running() || ++idleTicks >= 8) {
          idleTicks = 0;
          await refresh();
        }
        return true;
      }, ctx.signal);
    });
}

function shortKey(key: string): string {
  const parts = key.split(".");
  return parts.length > 2 ? "…" + parts.slice(-2).join(".") : key;
}

function sortValue(col: string): (r: RunRow) => unknown {
  if (col.startsWith("c:")) {
    const key = col.slice(2);
    return (r) => r.config[key];
  }
  if (col.startsWith("m:")) {
    const [, key, which] = /^m:(.*):(last|best)$/.exec(col) ?? [];
    return (r) => r.metrics[key]?.[which as "last" | "best"] ?? null;
  }
  switch (col) {
    case "tags":
      return (r) => r.tags.join(",");
    case "status":
      return (r) => STATUSES.indexOf(r.status);
    default:
      return (r) => (r as unknown as Record<string, unknown>)[col];
  }
}
