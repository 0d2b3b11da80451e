// A command component: built with the WASI shim, whose _start the command adapter turns into wasi:cli/run.

import { log } from "ngixi-host";

log.write("{{name}} starts");
console.log("Hello from {{name}}");
