// Keeps the AssemblyScript compiler loaded for watch mode.
// Usage: node asc_server.mjs <path to assemblyscript/dist/asc.js>; run with the project root as cwd.
// Protocol: one JSON request per stdin line, {"id": n, "argv": [...]} or {"id": n, "argv": [...], "cwd":
// "/abs/project"} (compiled from that folder, as if started there), answered in order by one
// JSON line on stdout: {"id": n, "ok": bool, "diagnostics": "...", "inputs": {path: sha256|null}}.
// `inputs` is every file asc asked for (null: it was absent), so the caller can tell whether a
// result still matches the sources. A FIFO, a device or a file over MAX_SOURCE_BYTES is never read (it
// could block the compiler, which every project of a build shares, or exhaust its memory): it is
// absent to asc, and `diagnostics` says so. End of stdin ends the process at once: its client is
// gone or stopping it, and nothing reads a reply (a compile stuck on a guest's input would keep it).
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import path from "node:path";
import readline from "node:readline";
import { pathToFileURL } from "node:url";

const asc = (await import(pathToFileURL(process.argv[2]).href)).default;
const MAX_SOURCE_BYTES = 64 * 1024 * 1024;

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

class NotRead extends Error {}

// The bytes of a regular file, opened without waiting for a writer (a FIFO's open would wait).
async function readRegular(resolved) {
  const handle = await open(resolved, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const status = await handle.stat();
    if (status.isDirectory()) return null;
    if (!status.isFile()) throw new NotRead("not a regular file (a FIFO or a device)");
    if (status.size > MAX_SOURCE_BYTES) throw new NotRead(`${status.size} bytes, over ${MAX_SOURCE_BYTES}`);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

async function compile(request) {
  const inputs = {};
  const notRead = [];
  const readTracked = async (filename, baseDir) => {
    const resolved = path.resolve(baseDir, filename);
    let bytes = null;
    try {
      bytes = await readRegular(resolved);
    } catch (error) {
      if (error instanceof NotRead) notRead.push(`${resolved}: ${error.message}; not read`);
    }
    inputs[resolved] = bytes === null ? null : createHash("sha256").update(bytes).digest("hex");
    return bytes === null ? null : bytes.toString("utf8");
  };
  const stdout = asc.createMemoryStream();
  const stderr = asc.createMemoryStream();
  resetLibrary();
  if (request.cwd !== undefined) process.chdir(request.cwd);
  const result = await asc.main(request.argv, { stdout, stderr, readFile: readTracked });
  return {
    id: request.id,
    ok: result.error === null,
    diagnostics: [...notRead, stderr.toString() + stdout.toString()].join("\n").trim(),
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
  .on("close", () => process.exit(0));
reply({ ready: true, version: asc.version });
