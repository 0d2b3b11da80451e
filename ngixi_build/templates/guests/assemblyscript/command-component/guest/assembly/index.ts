// A command component: built with the WASI shim, whose _start the command adapter turns into wasi:cli/run.
// `ngixi run BUNDLE Ada Grace` greets each name on stdout; no name is an error (exit 1: wasi:cli/run's result
// is ok or error, so a component's exit status is 0 or 1).

import { log } from "ngixi-host";

const FAILURE = 1;

const names = process.argv.slice(1);
if (names.length == 0) {
  process.stderr.write("usage: {{name}} NAME...\n");
  process.exit(FAILURE);
}
log.write(`{{name}} greets ${names.length} ${names.length == 1 ? "name" : "names"}`);
for (let i = 0; i < names.length; i++) {
  console.log(`Hello, ${names[i]}!`);
}
