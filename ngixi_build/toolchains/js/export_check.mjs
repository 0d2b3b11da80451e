// An asc transform for core guests: refuses an export whose parameter or result is a managed
// AssemblyScript type (a string, an array, a class instance). Such a value compiles to a pointer
// (an i32) into the guest's own heap, which no host can fill or read; the call data ABI is the way.
// Usage: asc ... --transform <this file>. The compiler then fails with one line per such export.

const HINT =
  'take and give data through the call data ABI instead: declare input = "text" (or "bytes", "json") ' +
  'and output = ... under [exports.NAME] and use input.text() / output.text(s) from "ngixi-data" ' +
  '(docs/host-abi.md, "Call data")';

// What the source says of the instance's managed parameters and result: "parameter text: string".
function managedTypes(instance) {
  const { signature } = instance;
  const declared = instance.prototype.functionTypeNode;
  const written = (node, type) => (node ? node.range.toString() : type.toString());
  const found = [];
  signature.parameterTypes.forEach((type, index) => {
    const parameter = declared.parameters[index];
    if (type.isManaged) found.push(`parameter ${parameter.name.text}: ${written(parameter.type, type)}`);
  });
  if (signature.returnType.isManaged) found.push(`result ${written(declared.returnType, signature.returnType)}`);
  return found;
}

function userEntryFiles(program) {
  return [...program.filesByName.values()].filter((file) => file.source.sourceKind === 1); // USER_ENTRY
}

export default class ExportCheck {
  afterCompile() {
    const problems = [];
    for (const file of userEntryFiles(this.program)) {
      for (const [name, element] of file.exports ?? []) {
        for (const instance of element.instances?.values() ?? []) {
          for (const managed of managedTypes(instance)) {
            problems.push(`${file.source.normalizedPath}: export ${name}: its ${managed} compiles to a pointer (i32)`);
          }
        }
      }
    }
    if (problems.length) {
      const error = new Error(`${problems.join("; ")}; ${HINT}`);
      error.stack = error.message; // asc prints the stack: the message is the whole story
      throw error;
    }
  }
}
