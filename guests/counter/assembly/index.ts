// A library guest keeping a counter in the host's key-value store.

@external("ngixi", "kv_get")
declare function kv_get(
  namespace: usize, namespaceLength: i32, key: usize, keyLength: i32, buffer: usize, size: i32, length: usize,
): i32;
@external("ngixi", "kv_set")
declare function kv_set(
  namespace: usize, namespaceLength: i32, key: usize, keyLength: i32, value: usize, valueLength: i32,
): i32;

const NOT_FOUND: i32 = 9;
const cell = memory.data(8); // the count (i32), then its stored length

/** The new count, or minus the ngixi status code. */
export function increment(): i32 {
  const namespace = String.UTF8.encode("counters");
  const key = String.UTF8.encode("hits");
  const ns = changetype<usize>(namespace);
  const k = changetype<usize>(key);
  const found = kv_get(ns, namespace.byteLength, k, key.byteLength, cell, 4, cell + 4);
  if (found != 0 && found != NOT_FOUND) return -found;
  const count = (found == 0 ? load<i32>(cell) : 0) + 1;
  store<i32>(cell, count);
  const stored = kv_set(ns, namespace.byteLength, k, key.byteLength, cell, 4);
  return stored == 0 ? count : -stored;
}
