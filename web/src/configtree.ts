// A run's config as a collapsible tree: nested objects fold, leaves show their value and type.

import type { ConfigTree, ConfigValue } from "./api";
import { h } from "./dom";
import { fmtConfig, fmtConfigShort } from "./format";

type Node = ConfigValue | ConfigTree | Node[];

export function configTree(tree: ConfigTree): HTMLElement {
  const keys = Object.keys(tree);
  if (!keys.length) return h("p", { class: "muted" }, "No config recorded.");
  return h("ul", { class: "tree" }, keys.map((k) => item(k, tree[k] as Node, 0)));
}

function item(key: string, value: Node, depth: number): HTMLElement {
  if (value !== null && typeof value === "object") {
    const entries: [string, Node][] = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    // Short lists of scalars (layer sizes, betas) read best on one line.
    if (Array.isArray(value) && value.length <= 8 && value.every((v) => v === null || typeof v !== "object")) {
      return h("li", { class: "leaf" }, h("span", { class: "tree-key" }, key), h("span", { class: "tree-val list" }, JSON.stringify(value)));
    }
    return h("li", null,
      h("details", { open: depth < 2 },
        h("summary", null, h("span", { class: "tree-key" }, key), h("span", { class: "muted" }, Array.isArray(value) ? ` [${entries.length}]` : ` {${entries.length}}`)),
        h("ul", { class: "tree" }, entries.map(([k, v]) => item(k, v, depth + 1))),
      ),
    );
  }
  return h("li", { class: "leaf" }, h("span", { class: "tree-key" }, key), leaf(value));
}

function leaf(value: ConfigValue): HTMLElement {
  if (value === null) return h("span", { class: "tree-val null" }, "null");
  if (typeof value === "string") return h("span", { class: "tree-val str", title: value }, value);
  // A long fraction (a tuned learning rate) reads at 4 significant digits; the exact value on hover.
  return h("span", { class: `tree-val ${typeof value}`, title: fmtConfig(value) }, fmtConfigShort(value));
}
