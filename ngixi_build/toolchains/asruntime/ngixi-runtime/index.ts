// The runtime of AssemblyScript guests, core and component (asc --runtime): the incremental collector, with an
// allocator that collects before it traps at the memory's limit (tlsf.ts). Imported as a package, so that its
// functions are named `~lib/ngixi-runtime/...`, as the compiler's own library's are.
import "ngixi-runtime/tlsf";
import "~lib/rt/itcms";
