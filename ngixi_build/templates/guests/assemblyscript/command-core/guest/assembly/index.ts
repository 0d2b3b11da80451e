// A command guest: built with the WASI shim, run through _start. `ngixi run BUNDLE Ada Grace` greets each name
// on stdout; no name is a usage error (exit 2).

const USAGE_ERROR = 2;

const names = process.argv.slice(1);
if (names.length == 0) {
  process.stderr.write("usage: {{name}} NAME...\n");
  process.exit(USAGE_ERROR);
}
for (let i = 0; i < names.length; i++) {
  console.log(`Hello, ${names[i]}!`);
}
