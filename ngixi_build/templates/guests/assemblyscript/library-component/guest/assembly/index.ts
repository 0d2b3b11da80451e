// A component guest: it calls the host through bindings generated from the WIT catalog (`ngixi wit` shows it).

import { log } from "ngixi-host";

export function add(a: i32, b: i32): i32 {
  log.write(`{{name}} adds ${a} and ${b}`);
  return a + b;
}
