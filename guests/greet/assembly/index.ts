// A WASI command guest with arguments and environment: `ngixi run greet.ngx Ada` prints "Hello, Ada!".
// $GREETING (passed by the operator: ngixi run --env) changes the greeting; no name is a usage error.

const USAGE_ERROR = 2;

const names = process.argv.slice(1);
if (names.length == 0) {
  process.stderr.write("usage: greet NAME...\n"); // the shim's console.error writes to stdout
  process.exit(USAGE_ERROR);
}
const greeting = process.env.has("GREETING") ? process.env.get("GREETING") : "Hello";
console.log(`${greeting}, ${names.join(" and ")}!`);
