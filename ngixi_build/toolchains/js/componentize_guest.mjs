// Builds a JavaScript guest into a component with the pinned componentize-js.
// Usage: node componentize_guest.mjs <toolchain root> <entry.js> <WIT dir> <world> <out.wasm> <disabled features,...>
//   [--wrapper=<exports wrapper.mjs> [--report [--results=<exports returning a result<>,...>]]]
//   [--bundle=<bundle.mjs> --guest=<the guest's directory>]
// A syntax error is printed as oxc's code frame, which names file:line:column; any other failure as
// componentize-js's message. Exit 1 on failure, and <out.wasm> is then not written.
// With a wrapper path, the component is built from a module written there for the build, which exports the entry's
// exports. With --report (a guest granted log), each function is wrapped so that what it throws, or its promise
// rejects with, is logged at level error (an Error's message and the guest's line) before it traps (componentize-js
// traps without a word otherwise); what an export returning a result<> throws is its err, unless it is an Error.
// With "random" among the disabled features (a guest not granted random), Math.random, crypto.getRandomValues and
// crypto.randomUUID throw once the entry's module has run: the snapshot would give them, at every run, the numbers
// they drew while the component was built. (A draw while the module runs fails the build, granted or not: Wizer
// cannot call wasi:random while it snapshots.)
// With a bundle path (a guest with npm dependencies), the module is first bundled there with the pinned rolldown:
// componentize-js resolves only relative paths, never a package name in node_modules. The bundle carries a table
// of its lines' places in the guest's own files, so the wrapper still names the guest's line. Every file it takes
// must be under the guest's directory (its node_modules included), after links: a package's "main" or a link in
// it could otherwise build any file of the build machine into the guest.
import { realpathSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { createRequire, isBuiltin } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [root, entry, witPath, worldName, outPath, disabled, ...options] = process.argv.slice(2);
const option = (name) => options.find((item) => item.startsWith(`--${name}=`))?.slice(name.length + 3);
const wrapperPath = option("wrapper");
const bundlePath = option("bundle");
const guestDir = option("guest");
const resultExports = (option("results") ?? "").split(",").filter(Boolean); // exports whose WIT result is a result<>
const reporting = options.includes("--report");
const randomRefused = disabled.split(",").includes("random");
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
const componentizeJsRoot = path.join(root, "node_modules", "@bytecodealliance", "componentize-js");
const { componentize } = await import(pathToFileURL(path.join(componentizeJsRoot, "src", "componentize.js")).href);
// The same module instance componentize.js splices the world's bindings with.
const splicerModule = path.join(componentizeJsRoot, "lib", "spidermonkey-embedding-splicer.js");
const { splicer } = await import(pathToFileURL(splicerModule).href);

// componentize-js 0.23.0's glue for a world's exports (jco's bindings, run inside the component) changed values that
// cross it: its UTF-8 decoder (`new TextDecoder()`) drops a string argument's leading U+FEFF, and its engine hands a
// core i64 argument over as an unsigned BigInt and takes a returned one as unsigned, where the glue treats both as
// signed, as JavaScript's WebAssembly API does: an s64 argument of -1 arrived as 18446744073709551615n, and an s64
// result of -1n trapped (bytecodealliance/ComponentizeJS#343 is the same for imports). The glue is corrected as it is
// spliced: each export's i64 arguments read as signed, its i64 result given as unsigned; a u64's own conversions, which
// the glue makes, are unchanged by either. A glue not of the expected form fails the build rather than build it so.
function correctedGlue(made) {
  let glue = made.jsBindings.replaceAll("new TextDecoder()", "new TextDecoder('utf-8', { ignoreBOM: true })");
  for (const [name, signature] of made.exports) {
    const wide = signature.params.flatMap((type, index) => (type === "i64" ? [index] : []));
    if (wide.length === 0 && signature.ret !== "i64") continue;
    const opening = new RegExp(`\\bfunction ${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\(([^)]*)\\) \\{\n`).exec(glue);
    const end = opening && glue.indexOf("\n}\n", opening.index);
    if (!opening || end < 0) fail(`componentize-js's glue has no function ${name} of the form this build corrects`);
    const names = opening[1].split(",").map((param) => param.trim());
    let body = glue.slice(opening.index + opening[0].length, end);
    body = wide.map((index) => `  ${names[index]} = BigInt.asIntN(64, BigInt(${names[index]}));\n`).join("") + body;
    if (signature.ret === "i64") {
      const returned = body.replace(/\breturn (toU?[Ii]nt64\(ret\));/, "return BigInt.asUintN(64, $1);");
      if (returned === body) fail(`componentize-js's glue of ${name} returns its i64 in a form this build does not know`);
      body = returned;
    }
    glue = glue.slice(0, opening.index + opening[0].length) + body + glue.slice(end);
  }
  return { ...made, jsBindings: glue };
}
const spliceBindings = splicer.spliceBindings;
splicer.spliceBindings = (...args) => correctedGlue(spliceBindings(...args));
// The wrapper's own functions, written into it by their source text (`writeAt` is the wrapper's import).
// report: logs what an export throws (or its promise rejects with) as "Name: message (at file:line in function)"
// for an Error, "uncaught VALUE (in export)" for anything else; from an export returning a result, a thrown value
// that is not an Error (or has a payload) is the result's err, which componentize-js returns: not logged.
function report(error, exported, returnsResult) {
  const isError = error instanceof Error;
  if (returnsResult && !(isError && !("payload" in error))) return;
  if (!isError) return writeAt("error", `uncaught ${shownValue(error)} (in ${exported})`);
  const made = error.constructor?.name;
  const name = error.name === "Error" && made ? made : error.name;
  // The first frame in the guest's files outside the error's constructor (a subclass's is where the class is, not
  // the throw); this wrapper's own (a refused Math.random) is not the guest's.
  const frame = String(error.stack ?? "")
    .split("\n")
    .map((line) => /^(.*)@(.*):(\d+):\d+$/.exec(line))
    .filter(Boolean)
    .map(([, called, file, line]) => {
      const place = typeof ngixiBundleLines === "undefined" ? null : ngixiBundleLines.lines[Number(line) - 1];
      return place ? [called, ngixiBundleLines.sources[place[0]], place[1]] : [called, file, Number(line)];
    })
    .find(([called, file]) => called !== made && !file.endsWith(ngixiWrapperName));
  const where = frame ? ` (at ${frame[1]}:${frame[2]}${frame[0] ? ` in ${frame[0]}` : ""})` : ` (in ${exported})`;
  writeAt("error", `${name}: ${error.message}${where}`);
}

// What a guest not granted random gets from Math.random, crypto.getRandomValues and crypto.randomUUID at run time.
function refusedDraw(what) {
  return function () {
    throw new Error(
      `${what}: this guest is not granted [capabilities.random], so it would draw, at every run, the numbers drawn ` +
        "while its component was built; add [capabilities.random] to its manifest to draw from the host",
    );
  };
}

function shownValue(value) {
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json.length > 200 ? `${json.slice(0, 200)}...` : json;
  } catch {} // a cycle, a BigInt
  return String(value);
}

function wrapped(value, exported, returnsResult) {
  if (typeof value !== "function") return value;
  return function (...args) {
    let returned;
    try {
      returned = value.apply(this, args);
    } catch (error) {
      report(error, exported, returnsResult);
      throw error;
    }
    // An async export's rejection, reported before componentize-js (which settles the promise after the call) traps.
    if (typeof returned?.then === "function") returned.then(undefined, (error) => report(error, exported, returnsResult));
    return returned;
  };
}

function exportsWrapper(wrapper) {
  let specifier = path.relative(path.dirname(wrapper), entry).split(path.sep).join("/");
  specifier = specifier.startsWith(".") ? specifier : `./${specifier}`;
  const names = parsed.module.staticExports
    .flatMap((item) => item.entries)
    .filter((entry) => entry.exportName.kind === "Name" && entry.exportName.name !== "default")
    .map((entry) => entry.exportName.name);
  const reported = [
    `import * as guest from ${JSON.stringify(specifier)};`,
    `import { writeAt } from "ngixi:host/log@0.1.0";`,
    `const ngixiWrapperName = ${JSON.stringify(path.basename(wrapper))};`,
    String(report),
    String(shownValue),
    String(wrapped),
    ...names.map((name, n) => {
      const quoted = JSON.stringify(name);
      return `const export${n} = wrapped(guest[${quoted}], ${quoted}, ${resultExports.includes(name)});`;
    }),
    ...names.map((name, n) => `export { export${n} as ${JSON.stringify(name)} };`),
  ];
  // Run after the entry's module (an import runs first), at build: the guest's calls meet them.
  const refused = [
    String(refusedDraw),
    "Math.random = refusedDraw('Math.random');",
    "if (globalThis.crypto) {",
    "  crypto.getRandomValues = refusedDraw('crypto.getRandomValues');",
    "  crypto.randomUUID = refusedDraw('crypto.randomUUID');",
    "}",
  ];
  const lines = [
    `export * from ${JSON.stringify(specifier)};`,
    ...(reporting ? reported : []),
    ...(randomRefused ? refused : []),
  ];
  return lines.join("\n") + "\n";
}

// A source map's mappings (base64 VLQ) → for each generated line, the [source, line] (1-based) of its first segment.
function firstPlaces(mappings) {
  const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const state = [0, 0, 0, 0];
  return mappings.split(";").map((segments) => {
    let first = null;
    for (const segment of segments.split(",").filter(Boolean)) {
      const fields = [];
      for (let value = 0, shift = 0, i = 0; i < segment.length; i++) {
        const digit = digits.indexOf(segment[i]);
        value += (digit & 31) << shift;
        shift += 5;
        if (digit & 32) continue;
        fields.push(value & 1 ? -(value >>> 1) : value >>> 1);
        value = shift = 0;
      }
      for (let f = 1; f < fields.length && f < 4; f++) state[f] += fields[f];
      if (first === null && fields.length >= 4) first = [state[1], state[2] + 1];
    }
    return first;
  });
}

// A rolldown plugin refusing a file outside `directory` (the build's own `input`, the exports wrapper, apart).
function guestFilesOnly(directory, input) {
  const inside = realpathSync(directory);
  return {
    name: "ngixi-guest-files-only",
    load(id) {
      if (id.startsWith("\0") || id === input) return null; // a virtual module of rolldown's; the wrapper
      const relative = path.relative(inside, realpathSync(id));
      if (relative === ".." || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative)) {
        const named = path.relative(process.cwd(), id);
        fail(`${named}: outside the guest's directory ${directory} (it is ${realpathSync(id)}); a guest's npm ` +
          `packages must be files under it, node_modules included: not a link or a package.json "main" out of it`);
      }
      return null;
    },
  };
}

// The bundle's table of its lines' places in the guest's files (set once bundled).
let bundleTable = null;

// `message` with each place in the bundle, a file removed after the build, named by the file and line it came from.
function placedInGuest(message) {
  if (!bundleTable) return message;
  const escaped = bundlePath.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return message.replace(new RegExp(`(?:[^\\s"'(]*/)?${escaped}:(\\d+)(?::\\d+)?`, "g"), (whole, line) => {
    const place = bundleTable.lines[Number(line) - 1];
    return place ? `${bundleTable.sources[place[0]]}:${place[1]}` : whole;
  });
}

// The first import rolldown could not resolve, said in one line (its error shows rolldown's own stack and a "main
// field ignored" help that is not the cause): the file, line and column, and for a Node.js built-in, why.
let unresolved = null;

function unresolvedImport(log) {
  const file = path.relative(process.cwd(), log.loc?.file ?? log.id ?? "");
  const where = log.loc ? `${file}:${log.loc.line}:${log.loc.column + 1}` : file;
  const name = log.exporter;
  if (isBuiltin(name)) {
    return `${where}: imports '${name}', a Node.js built-in module: a component has none of Node's modules; ` +
      "use a package, or a version of it, that does without them";
  }
  return `Could not resolve '${name}' in ${where}: an import names one of the guest's npm dependencies ` +
    "(package.json and package-lock.json in its folder) or a path relative to the importing file ('./x.js')";
}

async function bundle(input, out) {
  const { rolldown } = await import(pathToFileURL(require.resolve("rolldown")).href);
  const build = await rolldown({
    input: path.resolve(input), // relative, it would be read as a package name
    plugins: [guestFilesOnly(guestDir, path.resolve(input))],
    cwd: process.cwd(),
    external: [/^(ngixi|wasi):/],
    platform: "neutral",
    resolve: { mainFields: ["module", "main"], conditionNames: ["import", "module", "default", "require"] },
    // A package name that resolves nowhere would be left as an import componentize-js cannot load: an error here.
    onLog: (level, log, handler) => {
      if (log.code !== "UNRESOLVED_IMPORT") return handler(level, log);
      unresolved ??= unresolvedImport(log);
      handler("error", log);
    },
  });
  const { output } = await build.generate({ dir: path.dirname(out), format: "esm", sourcemap: "hidden" });
  await build.close();
  const [chunk] = output;
  const sources = chunk.map.sources.map((source) => path.relative(process.cwd(), path.resolve(path.dirname(out), source)));
  const table = (bundleTable = { sources, lines: firstPlaces(chunk.map.mappings) });
  // Appended, so no line moves; read only when an export throws, long after the module ran.
  const code = `${chunk.code}\nconst ngixiBundleLines = ${JSON.stringify(table)};\n`;
  await writeFile(out, code, { flag: "wx" });
  return out;
}

// SpiderMonkey in componentize-js is built without ICU: a Unicode property escape (/\p{Lu}/u) fails the module's
// evaluation with a SyntaxError that says nothing of why; the line put first names the file and what to do.
function withNoIcuHint(message) {
  const place = message.match(/^(\S+:\d+) SyntaxError: invalid (?:class )?property name in regular expression/m);
  if (!place) return message;
  const hint = "a Unicode property escape (\\p{...}) in a regular expression cannot compile: componentize-js's " +
    "engine has no ICU; use a package, or a version of it, without them";
  return `${place[1]}: ${hint}\n${message}`;
}

let component;
let failure;
try {
  // "wx": created here, never written through whatever another process left at the path (a link included).
  if (wrapperPath) await writeFile(wrapperPath, exportsWrapper(wrapperPath), { flag: "wx" });
  const module = wrapperPath || entry;
  ({ component } = await componentize({
    sourcePath: bundlePath ? await bundle(module, bundlePath) : module,
    witPath,
    worldName,
    disableFeatures: disabled ? disabled.split(",") : [],
  }));
} catch (error) {
  failure = unresolved ?? withNoIcuHint(`${entry}: ${placedInGuest(error.message)}`);
} finally {
  for (const made of [wrapperPath, bundlePath].filter(Boolean)) await rm(made, { force: true });
}
if (failure) fail(failure);
await writeFile(outPath, component);
