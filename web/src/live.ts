// Polling for live runs. The next poll is scheduled after the previous one finished, so a slow
// server never piles up requests; the page's AbortSignal ends it on navigation.

import { isAbort } from "./api";

export const POLL_MS = 2000;

/**
 * Calls `tick` every `ms` until it returns false or `signal` aborts. A failed tick is retried on the
 * next interval (the server may be restarting); `onError` can show why.
 */
export function poll(tick: () => Promise<boolean>, signal: AbortSignal, onError?: (err: unknown) => void, ms = POLL_MS): void {
  let timer: number | undefined;
  const schedule = () => {
    if (!signal.aborted) timer = window.setTimeout(run, ms);
  };
  const run = async () => {
    if (signal.aborted) return;
    try {
      if (await tick()) schedule();
    } catch (err) {
      if (isAbort(err) || signal.aborted) return;
      onError?.(err);
      schedule();
    }
  };
  signal.addEventListener("abort", () => window.clearTimeout(timer), { once: true });
  schedule();
}
