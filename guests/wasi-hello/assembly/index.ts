// A WASI preview 1 command guest: built with the WASI shim, run through _start.
console.log("Hello from a WASI guest");
