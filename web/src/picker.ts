// A multi-select dropdown with a filter box: config keys can number in the hundreds.

import { h, replace } from "./dom";

export interface PickerOptions {
  label: string;
  options: string[];
  selected: string[];
  onChange: (selected: string[]) => void;
}

// Close an open picker when clicking elsewhere, as a native select would. One listener for all.
document.addEventListener("click", (e) => {
  document.querySelectorAll<HTMLDetailsElement>("details.picker[open]").forEach((d) => {
    if (!d.contains(e.target as Node)) d.open = false;
  });
});

export function picker(opts: PickerOptions): HTMLElement {
  let selected = opts.selected.filter((o) => opts.options.includes(o));
  const count = h("span", { class: "count" });
  const list = h("div", { class: "picker-list" });
  const filter = h("input", { type: "search", placeholder: "Filter keys…", class: "picker-filter", oninput: () => renderList() });
  const details = h("details", { class: "picker" },
    h("summary", { class: "btn" }, opts.label, count),
    h("div", { class: "picker-panel" },
      filter,
      h("div", { class: "picker-actions" },
        h("button", { type: "button", class: "link-btn", onclick: () => set([]) }, "none"),
        h("button", { type: "button", class: "link-btn", onclick: () => set([...new Set([...selected, ...visible()])]) }, "all shown"),
      ),
      list,
    ),
  );

  details.addEventListener("toggle", () => details.open && filter.focus());

  function visible(): string[] {
    const q = filter.value.trim().toLowerCase();
    return q ? opts.options.filter((o) => o.toLowerCase().includes(q)) : opts.options;
  }

  function set(next: string[]): void {
    // Keep the order of the options, not of the clicks: columns then stay where one expects them.
    selected = opts.options.filter((o) => next.includes(o));
    opts.onChange(selected);
    renderList();
  }

  function renderList(): void {
    count.textContent = selected.length ? String(selected.length) : "";
    const shown = visible();
    replace(list, shown.length ? shown.map((o) =>
      h("label", { class: "picker-item", title: o },
        h("input", { type: "checkbox", checked: selected.includes(o), onchange: (e: Event) => {
          const on = (e.target as HTMLInputElement).checked;
          set(on ? [...selected, o] : selected.filter((s) => s !== o));
        } }),
        h("span", null, o),
      ),
    ) : h("div", { class: "muted picker-empty" }, opts.options.length ? "No key matches." : "None."));
  }

  renderList();
  return details;
}
