// A library guest keeping a counter in the host's key-value store, through the generated bindings.
import { kv, Status } from "ngixi";

const key = Uint8Array.wrap(String.UTF8.encode("hits"));
const cell = new Uint8Array(4); // the count (i32)
const stored = new kv.GetOut();

/** The new count, or minus the ngixi status code. */
export function increment(): i32 {
  const found = kv.get("counters", key, cell, stored);
  if (found != Status.Ok && found != Status.NotFound) return -found;
  const count = (found == Status.Ok ? load<i32>(cell.dataStart) : 0) + 1;
  store<i32>(cell.dataStart, count);
  const written = kv.set("counters", key, cell);
  return written == Status.Ok ? count : -written;
}
