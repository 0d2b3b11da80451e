"""WebAssembly engines behind one protocol: Wasmer and Wasmtime (core modules and components)."""
