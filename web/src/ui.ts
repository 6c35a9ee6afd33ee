// Small pieces the pages share: status badges, tag chips, error boxes, the top banner.

import { ApiError, errorMessage, type Status } from "./api";
import { h, replace } from "./dom";

const STATUS_TITLES: Record<Status, string> = {
  running: "Running: the process is alive and logging",
  finished: "Finished normally",
  failed: "Failed: the training code raised an error",
  interrupted: "Interrupted (Ctrl-C or a signal); it can be resumed",
  crashed: "Crashed: the process stopped without closing the run (killed, out of memory, power loss)",
};

export function statusBadge(status: Status): HTMLElement {
  return h("span", { class: `status status-${status}`, title: STATUS_TITLES[status] ?? status }, h("i", { class: "dot" }), status);
}

export function tagChip(tag: string, onRemove?: () => void): HTMLElement {
  return h("span", { class: "chip" }, tag,
    onRemove ? h("button", { type: "button", class: "chip-x", title: `Remove tag ${tag}`, "aria-label": `Remove tag ${tag}`, onclick: onRemove }, "×") : null,
  );
}

/** An error as a box in the page: the server's message, and what to do about the usual ones. */
export function errorBox(err: unknown, what = "Could not load"): HTMLElement {
  let hint: string | null = null;
  if (err instanceof ApiError) {
    // The banner already says what to do; the box only says what could not be shown.
    if (err.status === 401) return h("div", { class: "error-box", role: "alert" }, h("strong", null, `${what}: `), "the access token is missing or wrong.");
    if (err.status === 404) hint = "It may have been deleted, or the link has a typo.";
    if (err.status === 403) hint = "The dashboard was started read-only.";
  } else if (err instanceof TypeError) {
    hint = "The server did not answer: is `epochal ui` still running?";
  }
  return h("div", { class: "error-box", role: "alert" },
    h("strong", null, `${what}: `), errorMessage(err), hint ? h("div", { class: "muted" }, hint) : null,
  );
}

// ---- the banner under the top bar --------------------------------------------------------------

let bannerTimer: number | undefined;

export function showBanner(content: string | Node, kind: "error" | "info" = "error", autoHideMs = 0): void {
  const banner = document.getElementById("banner")!;
  banner.className = `banner banner-${kind}`;
  replace(banner, h("span", null, content), h("button", { type: "button", class: "banner-x", "aria-label": "Close", onclick: hideBanner }, "×"));
  banner.hidden = false;
  window.clearTimeout(bannerTimer);
  if (autoHideMs) bannerTimer = window.setTimeout(hideBanner, autoHideMs);
}

export function hideBanner(): void {
  document.getElementById("banner")!.hidden = true;
}

/** A failed change (PATCH, DELETE): the message in the banner, so it is seen wherever the button was. */
export function reportActionError(err: unknown, action: string): void {
  showBanner(`${action} failed: ${errorMessage(err)}`, "error", 8000);
}
