// Keeps the AssemblyScript compiler loaded for watch mode.
// Usage: node asc_server.mjs <path to assemblyscript/dist/asc.js>; run with the project root as cwd.
// Protocol: one JSON request per stdin line, {"id": n, "argv": [...]} or {"id": n, "argv": [...], "cwd":
// "/abs/project"} (compiled from that folder, as if started there), answered in order by one
// JSON line on stdout: {"id": n, "ok": bool, "diagnostics": "...", "inputs": {path: sha256|null}}.
// `inputs` is every file asc asked for (null: it was absent), so the caller can tell whether a
// result still matches the sources. End of stdin ends the process once queued requests are done.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import readline from "node:readline";
import { pathToFileURL } from "node:url";

const asc = (await import(pathToFileURL(process.argv[2]).href)).default;

// asc.main adds the files of a --lib directory to the shared `libraryFiles` and never removes
// them, so every later compile would parse them too (a WASI guest's shim breaks the next
// library guest). Each compile starts from the pristine set instead.
const pristineLibrary = { ...asc.libraryFiles };

function resetLibrary() {
  for (const name of Object.keys(asc.libraryFiles)) {
    if (!Object.hasOwn(pristineLibrary, name)) delete asc.libraryFiles[name];
  }
  Object.assign(asc.libraryFiles, pristineLibrary);
}

function reply(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

async function compile(request) {
  const inputs = {};
  const readTracked = async (filename, baseDir) => {
    const resolved = path.resolve(baseDir, filename);
    try {
      const bytes = await readFile(resolved);
      inputs[resolved] = createHash("sha256").update(bytes).digest("hex");
      return bytes.toString("utf8");
    } catch {
      inputs[resolved] = null;
      return null;
    }
  };
  const stdout = asc.createMemoryStream();
  const stderr = asc.createMemoryStream();
  resetLibrary();
  if (request.cwd !== undefined) process.chdir(request.cwd);
  const result = await asc.main(request.argv, { stdout, stderr, readFile: readTracked });
  return {
    id: request.id,
    ok: result.error === null,
    diagnostics: (stderr.toString() + stdout.toString()).trim(),
    inputs,
  };
}

async function handle(line) {
  let request;
  try {
    request = JSON.parse(line);
    reply(await compile(request));
  } catch (error) {
    // asc itself broke: its state may be damaged, so report and exit; the client starts a new one.
    reply({ id: request?.id ?? null, ok: false, fatal: true, diagnostics: String(error?.stack ?? error), inputs: {} });
    process.exit(1);
  }
}

let queue = Promise.resolve();
readline
  .createInterface({ input: process.stdin })
  .on("line", (line) => {
    queue = queue.then(() => handle(line));
  })
  .on("close", () => queue.then(() => process.exit(0)));
reply({ ready: true, version: asc.version });
