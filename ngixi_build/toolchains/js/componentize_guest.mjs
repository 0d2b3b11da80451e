// Builds a JavaScript guest into a component with the pinned componentize-js.
// Usage: node componentize_guest.mjs <toolchain root> <entry.js> <WIT dir> <world> <out.wasm> <disabled features,...>
//   [<exports wrapper.mjs>]
// A syntax error is printed as oxc's code frame, which names file:line:column; any other failure as
// componentize-js's message. Exit 1 on failure, and <out.wasm> is then not written.
// With a wrapper path (a guest granted log), the component is built from a module written there for the build:
// it exports the entry's exports, each function wrapped so that an Error it throws is logged at level error
// with its message and the guest's line before it traps (componentize-js traps without a word otherwise).
import { readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [root, entry, witPath, worldName, outPath, disabled, wrapperPath] = process.argv.slice(2);
const require = createRequire(path.join(root, "package.json"));

function fail(message) {
  process.stderr.write(message.endsWith("\n") ? message : message + "\n");
  process.exit(1);
}

const source = await readFile(entry, "utf8").catch((error) => fail(`${entry}: ${error.message}`));
const { parseSync } = require("oxc-parser");
const parsed = parseSync(entry, source, { sourceType: "module" });
const errors = parsed.errors.filter((error) => error.severity === "Error");
if (errors.length > 0) fail(errors.map((error) => error.codeframe || `${entry}: ${error.message}`).join("\n"));

// The package exports only an ES module entry, which require.resolve does not see.
const componentizeJs = path.join(root, "node_modules", "@bytecodealliance", "componentize-js", "src", "componentize.js");
const { componentize } = await import(pathToFileURL(componentizeJs).href);
// The wrapper's own functions, written into it by their source text (`writeAt` is the wrapper's import).
// report: logs an Error an export throws as "Name: message (at file:line in function)"; any other thrown value
// is a result's err (componentize-js returns it as the err), or traps as before.
function report(error) {
  if (!(error instanceof Error) || "payload" in error) return;
  const frame = /^(.*)@(.*):(\d+):\d+$/.exec(String(error.stack ?? "").split("\n")[0]);
  const where = frame ? ` (at ${frame[2]}:${frame[3]}${frame[1] ? ` in ${frame[1]}` : ""})` : "";
  writeAt("error", `${error.name}: ${error.message}${where}`);
}

function wrapped(value) {
  if (typeof value !== "function") return value;
  return function (...args) {
    try {
      return value.apply(this, args);
    } catch (error) {
      report(error);
      throw error;
    }
  };
}

function exportsWrapper(wrapper) {
  let specifier = path.relative(path.dirname(wrapper), entry).split(path.sep).join("/");
  specifier = specifier.startsWith(".") ? specifier : `./${specifier}`;
  const names = parsed.module.staticExports
    .flatMap((item) => item.entries)
    .filter((entry) => entry.exportName.kind === "Name" && entry.exportName.name !== "default")
    .map((entry) => entry.exportName.name);
  const lines = [
    `import * as guest from ${JSON.stringify(specifier)};`,
    `import { writeAt } from "ngixi:host/log@0.1.0";`,
    `export * from ${JSON.stringify(specifier)};`,
    String(report),
    String(wrapped),
    ...names.map((name, n) => `const export${n} = wrapped(guest[${JSON.stringify(name)}]);`),
    ...names.map((name, n) => `export { export${n} as ${JSON.stringify(name)} };`),
  ];
  return lines.join("\n") + "\n";
}

let component;
let failure;
try {
  // "wx": created here, never written through whatever another process left at the path (a link included).
  if (wrapperPath) await writeFile(wrapperPath, exportsWrapper(wrapperPath), { flag: "wx" });
  ({ component } = await componentize({
    sourcePath: wrapperPath || entry,
    witPath,
    worldName,
    disableFeatures: disabled ? disabled.split(",") : [],
  }));
} catch (error) {
  failure = `${entry}: ${error.message}`;
} finally {
  if (wrapperPath) await rm(wrapperPath, { force: true });
}
if (failure) fail(failure);
await writeFile(outPath, component);
