// A command guest: built with the WASI shim, run through _start; console.log writes to stdout.
console.log("Hello from {{name}}");
