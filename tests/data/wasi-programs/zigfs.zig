//! Files through Zig's std.Io on WASI, as a Zig program uses them: paths made, files written and read at
//! offsets, truncated, renamed, linked, copied, walked, deleted as trees. Prints what it saw.
const std = @import("std");
const Io = std.Io;

fn say(io: Io, comptime fmt: []const u8, args: anytype) void {
    var line: [512]u8 = undefined;
    const text = std.fmt.bufPrint(&line, fmt, args) catch "line too long\n";
    Io.File.stdout().writeStreamingAll(io, text) catch {};
}

pub fn main(init: std.process.Init) !void {
    const io = init.io;
    const gpa = init.gpa;
    var root = try Io.Dir.cwd().openDir(io, "data", .{ .iterate = true });
    defer root.close(io);
    try root.createDirPath(io, "a/b/c");
    {
        var file = try root.createFile(io, "a/b/c/note.txt", .{ .read = true });
        defer file.close(io);
        try file.writePositionalAll(io, "hello from zig\n", 0);
        var buf: [32]u8 = undefined;
        const n = try file.readPositionalAll(io, &buf, 6);
        say(io, "read back {d}: {s}", .{ n, buf[0..n] });
        const st = try file.stat(io);
        say(io, "size {d} kind {s}\n", .{ st.size, @tagName(st.kind) });
        try file.setLength(io, 5);
        say(io, "length {d}\n", .{try file.length(io)});
    }
    const content = try root.readFileAlloc(io, "a/b/c/note.txt", gpa, .limited(1 << 20));
    say(io, "readFileAlloc {d}: {s}\n", .{ content.len, content });
    try root.rename("a/b/c/note.txt", root, "a/moved.txt", io);
    try root.symLink(io, "moved.txt", "a/link", .{});
    var link_buf: [64]u8 = undefined;
    const link_len = try root.readLink(io, "a/link", &link_buf);
    say(io, "readLink {s}\n", .{link_buf[0..link_len]});
    try root.copyFile("a/moved.txt", root, "a/copy.txt", io, .{});
    var walker = try root.walk(gpa);
    defer walker.deinit();
    var kinds: [3]usize = .{ 0, 0, 0 }; // files, directories, symlinks: readdir's order is the host's
    while (try walker.next(io)) |entry| {
        switch (entry.kind) {
            .file => kinds[0] += 1,
            .directory => kinds[1] += 1,
            .sym_link => kinds[2] += 1,
            else => {},
        }
    }
    say(io, "walked {d} files, {d} directories, {d} links\n", .{ kinds[0], kinds[1], kinds[2] });
    if (root.openFile(io, "missing", .{})) |_| {} else |err| say(io, "open missing: {s}\n", .{@errorName(err)});
    if (root.deleteDir(io, "a")) |_| {} else |err| say(io, "deleteDir nonempty: {s}\n", .{@errorName(err)});
    if (root.createFile(io, "a/moved.txt", .{ .exclusive = true })) |_| {} else |err| say(io, "exclusive: {s}\n", .{@errorName(err)});
    try root.deleteTree(io, "a/b");
    try root.deleteFile(io, "a/copy.txt");
    const st = try root.statFile(io, "a/moved.txt", .{});
    say(io, "stat moved {d}\n", .{st.size});
    try root.access(io, "a/moved.txt", .{});
    say(io, "done\n", .{});
}
