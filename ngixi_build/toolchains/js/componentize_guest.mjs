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
// With "clocks" among them (not granted clock and stdio), setTimeout and setInterval throw likewise (the engine
// trapped without a word when a timer was due).
// With a bundle path (a guest with npm dependencies), the module is first bundled there with the pinned rolldown:
// componentize-js resolves only relative paths, never a package name in node_modules. The bundle carries a table
// of its lines' places in the guest's own files, so the wrapper still names the guest's line. Every file it takes
// must be under the guest's directory (its node_modules included), after links: a package's "main" or a link in
// it could otherwise build any file of the build machine into the guest.
import { existsSync, realpathSync } from "node:fs";
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
const timersRefused = disabled.split(",").includes("clocks");
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
  // SpiderMonkey throws this string when an allocation finds no memory; the host reads this line, its level and the
  // export's name as the memory running out (capabilities/log.py), as it cannot see a component's memory.
  if (error === "out of memory") return writeAt("error", `out of memory (in ${exported})`);
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

// What a guest not granted clock and stdio gets from setTimeout and setInterval at run time (the engine trapped,
// 'unreachable in subscribe-instant', when the timer was due).
function refusedTimer(what) {
  return function () {
    throw new Error(
      `${what}: this guest is not granted [capabilities.clock] and [capabilities.stdio], which a JavaScript guest's ` +
        "timers wait with; add both to its manifest",
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

// An export's argument as a value of the guest's own realm: componentize-js's glue makes lists, records and byte
// arrays in another, so `bytes instanceof Uint8Array` was false (tweetnacl refused them: "unexpected type, use
// Uint8Array") and an object's prototype was not the guest's Object.prototype.
function adopted(value) {
  return value !== null && typeof value === "object" ? structuredClone(value) : value;
}

function wrapped(value, exported, returnsResult) {
  if (typeof value !== "function") return value;
  return function (...args) {
    let returned;
    try {
      returned = value.apply(this, args.map(adopted));
    } catch (error) {
      report(error, exported, returnsResult);
      throw error;
    }
    // An async export's rejection, reported before componentize-js (which settles the promise after the call) traps.
    if (typeof returned?.then === "function") returned.then(undefined, (error) => report(error, exported, returnsResult));
    return returned;
  };
}

// The engine's `location` traps when read in a component (no page it was loaded from; url-parse reads it, as a
// browser's, for a relative URL's base): a guest has none, as in Node.js.
const LOCATION_REMOVED = "delete globalThis.location;";

function exportsWrapper(wrapper) {
  let specifier = path.relative(path.dirname(wrapper), entry).split(path.sep).join("/");
  specifier = specifier.startsWith(".") ? specifier : `./${specifier}`;
  const names = parsed.module.staticExports
    .flatMap((item) => item.entries)
    .filter((entry) => entry.exportName.kind === "Name" && entry.exportName.name !== "default")
    .map((entry) => entry.exportName.name);
  const reported = [
    `import { writeAt } from "ngixi:host/log@0.1.0";`,
    `const ngixiWrapperName = ${JSON.stringify(path.basename(wrapper))};`,
    String(report),
    String(shownValue),
  ];
  const exported = [
    `import * as guest from ${JSON.stringify(specifier)};`,
    ...(reporting ? reported : ["function report() {}"]),
    String(adopted),
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
  const timers = [
    String(refusedTimer),
    "globalThis.setTimeout = refusedTimer('setTimeout');",
    "globalThis.setInterval = refusedTimer('setInterval');",
  ];
  const lines = [
    `export * from ${JSON.stringify(specifier)};`,
    ...exported,
    LOCATION_REMOVED,
    ...(randomRefused ? refused : []),
    ...(timersRefused ? timers : []),
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

// SpiderMonkey in componentize-js is built without ICU: a regular expression literal with a Unicode property escape
// (/[\p{L}\p{N}]/u: marked, valibot, fast-uri, fuse.js, camelcase) fails the whole module's evaluation, at build. Each is
// rewritten into the characters the escapes stand for, as Babel does (regexpu-core), in place: no line moves.
function unicodePropertyEscapes() {
  const rewritePattern = require("regexpu-core");
  const options = { unicodePropertyEscapes: "transform", unicodeSetsFlag: "transform" };
  const literals = (node, found) => {
    if (Array.isArray(node)) node.forEach((item) => literals(item, found));
    else if (node && typeof node === "object") {
      if (node.type === "Literal" && node.regex) {
        if (/\\[pP]\{/.test(node.regex.pattern) && /[uv]/.test(node.regex.flags)) found.push(node);
      } else for (const key in node) literals(node[key], found);
    }
    return found;
  };
  return {
    name: "ngixi-unicode-property-escapes",
    transform(code, id) {
      if (!/\\[pP]\{/.test(code)) return null;
      const found = literals(parseSync(id, code, { sourceType: "unambiguous" }).program, []);
      if (found.length === 0) return null;
      let rewritten = "";
      let at = 0;
      for (const { start, end, regex } of found) {
        const flags = regex.flags.replace("v", "u");
        rewritten += `${code.slice(at, start)}/${rewritePattern(regex.pattern, regex.flags, options)}/${flags}`;
        at = end;
      }
      rewritten += code.slice(at);
      const lines = code.split("\n").map((_, index) => (index === 0 ? "AAAA" : "AACA"));
      return { code: rewritten, map: { version: 3, sources: [id], names: [], mappings: lines.join(";") } };
    },
  };
}

// The bundle's input: `module` after a prelude that has Math.random and crypto.getRandomValues throw, with the caller's
// place, while the guest's files are imported at build (Wizer cannot call the host then, and trapped without naming the
// package: bignumber.js, immutable and @noble/curves draw when imported), and their own functions back after.
const BUNDLE_INPUT = "\0ngixi-bundle-input";
const PRELUDE = "\0ngixi-import-time-draws";

function importTimeDraws(module) {
  const prelude = `
const drawn = (what) => function () {
  throw new Error(what + " was called while the guest's module is imported at build, where Wizer cannot draw from the " +
    "host: draw inside an export, or use a package, or a version of it, that draws no random numbers when imported");
};
export const own = [Math.random, globalThis.crypto?.getRandomValues];
export const atImport = [drawn("Math.random"), drawn("crypto.getRandomValues")];
Math.random = atImport[0];
if (globalThis.crypto) crypto.getRandomValues = atImport[1];
`;
  const input = `import { own, atImport } from ${JSON.stringify(PRELUDE)};
export * from ${JSON.stringify(module)};
if (Math.random === atImport[0]) Math.random = own[0];
if (globalThis.crypto && crypto.getRandomValues === atImport[1]) crypto.getRandomValues = own[1];
`;
  return {
    name: "ngixi-import-time-draws",
    resolveId: (id) => ([BUNDLE_INPUT, PRELUDE].includes(id) ? id : null),
    load: (id) => (id === PRELUDE ? prelude : id === BUNDLE_INPUT ? input : null),
  };
}

// The bundle's table of its lines' places in the guest's files (set once bundled).
let bundleTable = null;

// `message` with each place in the bundle, a file removed after the build, named by the file and line it came from
// (none for the build's own modules: the prelude of import-time draws, the bundle's input).
function placedInGuest(message) {
  if (!bundleTable) return message;
  const escaped = bundlePath.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return message.replace(new RegExp(`(?:[^\\s"'(]*/)?${escaped}:(\\d+)(?::\\d+)?`, "g"), (_, line) => {
    const place = bundleTable.lines[Number(line) - 1];
    return place ? `${bundleTable.sources[place[0]]}:${place[1]}` : "(the build's own module)";
  });
}

// The imports rolldown could not resolve, each said in one line (its error shows rolldown's own stack and a "main
// field ignored" help that is not the cause): the file, line and column, and for a Node.js built-in, why.
const unresolved = [];
// rolldown's warnings (a direct eval, ...), said after the failure, whose line is the build's summary of it.
const warnings = [];

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

// Node.js's globals a package may use as it would in Node (csv-parse's Buffer), from the npm package of that name
// when the guest depends on it (npm's buffer and process: browser bundlers' polyfills of them).
const POLYFILLED_GLOBALS = { Buffer: ["buffer", "Buffer"], process: "process" };

function nodeGlobalsProvided() {
  const installed = (name) => existsSync(path.join(guestDir, "node_modules", name, "package.json"));
  return Object.fromEntries(
    Object.entries(POLYFILLED_GLOBALS).filter(([, from]) => installed(Array.isArray(from) ? from[0] : from)),
  );
}

async function bundle(input, out) {
  const { rolldown } = await import(pathToFileURL(require.resolve("rolldown")).href);
  const build = await rolldown({
    input: BUNDLE_INPUT,
    plugins: [
      importTimeDraws(path.resolve(input)), // relative, it would be read as a package name
      guestFilesOnly(guestDir, path.resolve(input)),
      unicodePropertyEscapes(),
    ],
    cwd: process.cwd(),
    external: [/^(ngixi|wasi):/],
    platform: "neutral",
    // A component has no `process`: a package choosing its build by process.env.NODE_ENV (immer, React) gets the
    // production one, as browser bundlers give it.
    transform: { define: { "process.env.NODE_ENV": JSON.stringify("production") }, inject: nodeGlobalsProvided() },
    resolve: {
      mainFields: ["module", "browser", "main"], // json5's "browser" build draws Math.random when imported
      aliasFields: [["browser"]],
      conditionNames: ["import", "module", "worker", "browser", "default", "require"],
    },
    // A package name that resolves nowhere would be left as an import componentize-js cannot load: each is said,
    // and the build fails once all are known.
    onLog: (level, log, handler) => {
      if (log.code === "UNRESOLVED_IMPORT") return unresolved.push(unresolvedImport(log));
      if (level === "warn") return warnings.push(log.message);
      handler(level, log);
    },
  });
  const { output } = await build.generate({ dir: path.dirname(out), format: "esm", sourcemap: "hidden" });
  await build.close();
  if (unresolved.length > 0) throw new Error("unresolved imports");
  const [chunk] = output;
  const sources = chunk.map.sources.map((source) => path.relative(process.cwd(), path.resolve(path.dirname(out), source)));
  const table = (bundleTable = { sources, lines: firstPlaces(chunk.map.mappings) });
  // Appended, so no line moves; read only when an export throws, long after the module ran.
  const code = `${chunk.code}\nconst ngixiBundleLines = ${JSON.stringify(table)};\n`;
  await writeFile(out, code, { flag: "wx" });
  return out;
}

// Why the guest's module failed at build, put first (the build's summary of the failure is its first line): wizer's own
// lines say only that initialization failed or trapped. `message` follows, but for a trap's wasm backtrace, which
// names no function.
function withCauseFirst(message) {
  const cause = buildFailureCause(message);
  const called = message.match(/^.*attempted to call an unknown imported function: .*$/m);
  return cause ? `${cause}\n${called ? called[0].trim() : message}` : message;
}

const NODE_GLOBALS = new Set(["process", "Buffer", "require", "module", "exports", "global", "__dirname", "__filename",
  "setImmediate"]);

function buildFailureCause(message) {
  const called = message.match(/attempted to call an unknown imported function: '([^']+)' '([^']+)'/);
  if (called) {
    return `${entry}: the guest's module, or a package it imports, called the host's ${called[1]} ${called[2]} while ` +
      "it was imported at build, which cannot be (Wizer snapshots the module then): make that call inside an export, " +
      (called[1].startsWith("wasi:random") ? "or use a package, or a version of it, that draws no random numbers when imported" : "");
  }
  const thrown = message.match(/^(\S+?:\d+|\(the build's own module\))(?::\d+)? (\w*Error: .*)$/m);
  if (!thrown) return null;
  // The first frame in the guest's files, not the build's own code (the import-time draws' prelude).
  const frames = message.slice(message.indexOf("\nStack:\n")).matchAll(/^\s+\S*@(\S+?:\d+)(?::\d+)?$/gm);
  const place = [...frames][0]?.[1];
  if (place) thrown[1] = place;
  if (/^SyntaxError: invalid (?:class )?property name in regular expression/.test(thrown[2])) {
    return `${thrown[1]}: a Unicode property escape (\\p{...}) in a regular expression cannot compile: componentize-js's ` +
      "engine has no ICU (the build rewrites those of regular expression literals in a guest with npm dependencies, " +
      "never those of a pattern made from a string with new RegExp); use a package, or a version of it, without them";
  }
  const global = thrown[2].match(/^ReferenceError: (\S+) is not defined$/)?.[1];
  const polyfill = POLYFILLED_GLOBALS[global];
  const why = !NODE_GLOBALS.has(global)
    ? ""
    : `: ${global} is a Node.js global, and a component has none of Node's; use a package, or a version of it, made ` +
      (polyfill
        ? `for browsers, or add npm's ${[polyfill].flat()[0]} to the guest's dependencies: the build then provides it`
        : "for browsers");
  return `${thrown[1]}: ${thrown[2]} (thrown while the guest's module was imported at build)${why}`;
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
  failure = unresolved.length > 0 ? unresolved.join("\n") : withCauseFirst(`${entry}: ${placedInGuest(error.message)}`);
} finally {
  for (const made of [wrapperPath, bundlePath].filter(Boolean)) await rm(made, { force: true });
}
if (failure) fail([failure, ...warnings].join("\n"));
await writeFile(outPath, component);
