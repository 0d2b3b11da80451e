//! A Zig library guest: keeps notes in the host's key-value store and logs what it does.
const ngixi = @import("ngixi");

const namespace = "notes";

fn fail(status: ngixi.Status) i32 {
    return -@intFromEnum(status);
}

/// Saves note number `n`; returns how many notes there are, or minus the ngixi status code.
export fn save(n: i32) i32 {
    var key_buf: [16]u8 = undefined;
    const key = formatKey(&key_buf, n);
    const stored = ngixi.kv.set(namespace, key, "a note from Zig");
    if (stored != .ok) return fail(stored);
    ngixi.log.writeAt(.info, "zig-notes: saved a note");
    var keys: [256]u8 = undefined;
    var length: u32 = 0;
    const listed = ngixi.kv.keys(namespace, "note-", &keys, &length);
    if (listed != .ok) return fail(listed);
    return countKeys(keys[0..length]);
}

/// Keys come as a u32 length (little-endian) followed by the key's bytes.
fn countKeys(listing: []const u8) i32 {
    var count: i32 = 0;
    var at: usize = 0;
    while (at + 4 <= listing.len) : (count += 1) {
        const len = @as(usize, listing[at]) | @as(usize, listing[at + 1]) << 8 |
            @as(usize, listing[at + 2]) << 16 | @as(usize, listing[at + 3]) << 24;
        at += 4 + len;
    }
    return count;
}

fn formatKey(buf: *[16]u8, n: i32) []const u8 {
    const prefix = "note-";
    @memcpy(buf[0..prefix.len], prefix);
    var digits: [10]u8 = undefined;
    var value: u32 = @abs(n);
    var count: usize = 0;
    while (true) {
        digits[count] = @intCast('0' + value % 10);
        count += 1;
        value /= 10;
        if (value == 0) break;
    }
    for (0..count) |i| buf[prefix.len + i] = digits[count - 1 - i];
    return buf[0 .. prefix.len + count];
}
