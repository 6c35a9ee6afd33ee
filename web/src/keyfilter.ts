// The key filter above a page's charts: "loss" keeps keys that contain it, "valid/*" or "*acc*" keys
// that match the glob (* any characters, ? one), and "loss, lr" keys that match either. Case does not matter.

/** A test for keys that `pattern` keeps; null when it keeps every key (nothing typed). */
export function keyMatcher(pattern: string): ((key: string) => boolean) | null {
  const terms = pattern.split(",").map((t) => t.trim().toLowerCase()).filter(Boolean);
  if (!terms.length) return null;
  const tests = terms.map((term) => {
    if (!/[*?]/.test(term)) return (key: string) => key.toLowerCase().includes(term);
    const source = term.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    const re = new RegExp(`^${source}$`, "i");
    return (key: string) => re.test(key);
  });
  return (key) => tests.some((test) => test(key));
}
