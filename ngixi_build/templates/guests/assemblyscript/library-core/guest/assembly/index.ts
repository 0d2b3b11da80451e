// A library guest: each export is a function the host calls; `greet` writes through the host's log.

@external("ngixi", "log")
declare function hostLog(level: i32, message: usize, length: i32): void;

const INFO: i32 = 2;

function log(level: i32, message: string): void {
  const bytes = String.UTF8.encode(message);
  hostLog(level, changetype<usize>(bytes), bytes.byteLength);
}

export function add(a: i32, b: i32): i32 {
  return a + b;
}

export function greet(): void {
  log(INFO, "hello from {{name}}");
}
