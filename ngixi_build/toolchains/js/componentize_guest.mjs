// Builds a JavaScript guest into a component with the pinned componentize-js.
// Usage: node componentize_guest.mjs <toolchain root> <entry.js> <WIT dir> <world> <out.wasm> <disabled features,...>
// A syntax error is printed as oxc's code frame, which names file:line:column; any other failure as
// componentize-js's message. Exit 1 on failure, and <out.wasm> is then not written.
import { readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [root, entry, witPath, worldName, outPath, disabled] = process.argv.slice(2);
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
let component;
try {
  ({ component } = await componentize({
    sourcePath: entry,
    witPath,
    worldName,
    disableFeatures: disabled ? disabled.split(",") : [],
  }));
} catch (error) {
  fail(`${entry}: ${error.message}`);
}
await writeFile(outPath, component);
