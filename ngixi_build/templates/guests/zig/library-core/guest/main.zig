//! A Zig library guest: `greet` takes text in and gives text out through the call data ABI, and logs.
//! Its host functions come from the module `ngixi`, generated from the WIT catalog (`ngixi wit` shows it).
const std = @import("std");
const ngixi = @import("ngixi");

const allocator = std.heap.wasm_allocator;

/// The call's input: its length first, then its bytes.
fn readInput() ?[]u8 {
    var length: u32 = 0;
    var none: [0]u8 = .{};
    _ = ngixi.data.input(&none, &length);
    const text = allocator.alloc(u8, length) catch return null;
    if (ngixi.data.input(text, &length) != .ok) return null;
    return text;
}

/// "Hello, <input>!"
export fn greet() void {
    const name = readInput() orelse return;
    defer allocator.free(name);
    var line: [128]u8 = undefined;
    const logged = std.fmt.bufPrint(&line, "{{name}} greets {s}", .{name}) catch "{{name}} greets someone";
    ngixi.log.writeAt(.info, logged);
    _ = ngixi.data.output("Hello, ");
    _ = ngixi.data.output(name);
    _ = ngixi.data.output("!");
}
