// A component guest: its exports are typed by WIT (a string in, a string out), and it calls the host
// through bindings generated from the WIT catalog (`ngixi wit` shows it).

import { log } from "ngixi-host";

export function greet(name: string): string {
  log.write(`{{name}} greets ${name}`);
  return `Hello, ${name}!`;
}
