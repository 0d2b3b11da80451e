//! A Zig command guest: a WASI program; its arguments come from the caller, its lines go to stdout.
const std = @import("std");
const wasi = std.os.wasi;
const ngixi = @import("ngixi");

/// A `@panic` or a failed safety check ends the run with its message (std's handler would need WASI files).
pub const panic = ngixi.panic;

const stdout: wasi.fd_t = 1;
const stderr: wasi.fd_t = 2;

/// Writes `text` to `fd` with WASI's fd_write (std.Io would import every file function WASI has).
fn print(fd: wasi.fd_t, text: []const u8) void {
    var rest = text;
    while (rest.len > 0) {
        const piece = [_]wasi.ciovec_t{.{ .base = rest.ptr, .len = rest.len }};
        var written: usize = 0;
        if (wasi.fd_write(fd, &piece, piece.len, &written) != .SUCCESS) return;
        rest = rest[written..];
    }
}

pub fn main(init: std.process.Init.Minimal) u8 {
    var args = init.args.iterateAllocator(std.heap.wasm_allocator) catch return 1;
    defer args.deinit();
    const program = args.next() orelse "{{name}}";
    var line: [256]u8 = undefined;
    var greeted: usize = 0;
    while (args.next()) |name| : (greeted += 1) {
        print(stdout, std.fmt.bufPrint(&line, "Hello, {s}!\n", .{name}) catch "Hello, you with a long name!\n");
    }
    if (greeted > 0) return 0;
    print(stderr, std.fmt.bufPrint(&line, "usage: {s} NAME...\n", .{program}) catch "usage: {{name}} NAME...\n");
    return 2;
}
