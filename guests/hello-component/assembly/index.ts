// A component guest: it calls the host through bindings generated from the WIT catalog (wit/).

import { kv, log, types } from "ngixi-host";

export function add(a: i32, b: i32): i32 {
  log.write(`adding ${a} and ${b}`);
  return a + b;
}

/** Counts its calls in the key-value store: the new count, or minus (1 + the error code). */
export function count(): i32 {
  const key = Uint8Array.wrap(String.UTF8.encode("hits"));
  const found = kv.get("counters", key);
  if (!found.isOk && found.error != types.ErrorCode.NotFound) return -1 - found.error;
  const total = (found.isOk ? load<i32>(found.value.dataStart) : 0) + 1;
  const value = new Uint8Array(4);
  store<i32>(value.dataStart, total);
  const stored = kv.set("counters", key, value);
  if (!stored.isOk) return -1 - stored.error;
  log.writeAt(log.Level.Debug, `count is ${total}`);
  return total;
}
