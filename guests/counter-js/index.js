// A JavaScript component guest: a counter kept in the host's key-value store, each change logged.
// The bindings are the WIT catalog's interfaces the manifest grants, imported by their WIT names.
import { write } from "ngixi:host/log@0.1.0";
import { get, set } from "ngixi:host/kv@0.1.0";

const NAMESPACE = "counters";
const KEY = new TextEncoder().encode("total");

/** The counter; 0 before the first bump. A failed kv call (other than a missing key) throws, which traps. */
export function total() {
  try {
    return Number(new TextDecoder().decode(get(NAMESPACE, KEY)));
  } catch (error) {
    if (error.payload === "not-found") return 0;
    throw error;
  }
}

/** Adds `by` to the counter and returns the new total. */
export function bump(by) {
  const now = total() + by;
  set(NAMESPACE, KEY, new TextEncoder().encode(String(now)));
  write(`counter-js: bumped by ${by} to ${now}`);
  console.log(`total ${now}`); // standard output, which [capabilities.stdio] grants
  return now;
}
