// A library guest: each export is a function the host calls. `add` takes and returns numbers; `greet` takes
// text in and gives text out through the call data ABI ("ngixi-data"), and writes through the host's log
// (the "ngixi" bindings, generated from the WIT catalog: `ngixi wit` shows it).

import { log } from "ngixi";
import { input, output } from "ngixi-data";

export function add(a: i32, b: i32): i32 {
  return a + b;
}

export function greet(): void {
  const name = input.text();
  log.writeAt(log.LogLevel.Info, `{{name}} greets ${name}`);
  output.text(`Hello, ${name}!`);
}
