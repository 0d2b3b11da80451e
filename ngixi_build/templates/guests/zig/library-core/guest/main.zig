//! A Zig library guest: `greet` takes text in and gives text out through the call data ABI, and logs.
//! Its host functions come from the module `ngixi`, generated from the WIT catalog (`ngixi wit` shows it).
const std = @import("std");
const ngixi = @import("ngixi");

const allocator = std.heap.wasm_allocator;

/// A `@panic` or a failed safety check ends the call with its message (std's handler would need WASI files).
pub const panic = ngixi.panic;

/// "Hello, <input>!"
export fn greet() void {
    // No memory for the input ends the call with the error's name, never an answer as if it were empty.
    const name = ngixi.data.inputAlloc(allocator) catch |err| @panic(@errorName(err));
    defer allocator.free(name);
    var line: [128]u8 = undefined;
    const logged = std.fmt.bufPrint(&line, "{{name}} greets {s}", .{name}) catch "{{name}} greets someone";
    ngixi.log.writeAt(.info, logged);
    _ = ngixi.data.output("Hello, ");
    _ = ngixi.data.output(name);
    _ = ngixi.data.output("!");
}
