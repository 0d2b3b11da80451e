//! A Zig command through std.Io: its arguments and environment, standard input read to its end,
//! clocks, a sleep, random bytes, stderr and an exit code. Prints what it saw.
const std = @import("std");
const Io = std.Io;

fn say(io: Io, file: Io.File, comptime fmt: []const u8, args: anytype) void {
    var line: [512]u8 = undefined;
    const text = std.fmt.bufPrint(&line, fmt, args) catch "line too long\n";
    file.writeStreamingAll(io, text) catch {};
}

pub fn main(init: std.process.Init) !u8 {
    const io = init.io;
    const stdout = Io.File.stdout();
    const arguments = try init.minimal.args.toSlice(init.arena.allocator());
    say(io, stdout, "{d} arguments\n", .{arguments.len});
    for (arguments[1..]) |argument| say(io, stdout, "argument '{s}'\n", .{argument});
    say(io, stdout, "HOME={s} NOT_SET={?s}\n", .{ init.environ_map.get("HOME") orelse "-", init.environ_map.get("NOT_SET") });
    say(io, stdout, "{d} variables\n", .{init.environ_map.count()});

    var total: usize = 0;
    var lines: usize = 0;
    var buffer: [4096]u8 = undefined;
    while (true) {
        const got = Io.File.stdin().readStreaming(io, &.{&buffer}) catch |err| switch (err) {
            error.EndOfStream => break,
            else => return err,
        };
        total += got;
        lines += std.mem.count(u8, buffer[0..got], "\n");
    }
    say(io, stdout, "stdin {d} bytes, {d} lines\n", .{ total, lines });

    const real = Io.Clock.real.now(io).toNanoseconds();
    const before = Io.Clock.awake.now(io).toNanoseconds();
    try io.sleep(.fromMilliseconds(20), .awake);
    const slept = Io.Clock.awake.now(io).toNanoseconds() - before;
    say(io, stdout, "realtime after 2020 {}, slept 20 ms {}, under 2 s {}\n", .{
        real > 1577836800 * std.time.ns_per_s, slept >= 20 * std.time.ns_per_ms, slept < 2 * std.time.ns_per_s,
    });
    var random_bytes: [64]u8 = undefined;
    io.random(&random_bytes);
    var zeros: usize = 0;
    for (random_bytes) |byte| zeros += @intFromBool(byte == 0);
    say(io, stdout, "random mostly nonzero {}\n", .{zeros < 8});
    say(io, Io.File.stderr(), "a warning on stderr\n", .{});
    for (arguments[1..]) |argument| {
        if (std.mem.startsWith(u8, argument, "--exit=")) return std.fmt.parseInt(u8, argument[7..], 10);
    }
    return 0;
}
