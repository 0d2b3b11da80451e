/* Runs a script of raw WASI preview 1 calls, read from `.script` in the first preopen (or stdin), one call a line,
   and prints each call's errno and results in a canonical form, for test_wasi_differential.py to compare between
   two WASI implementations.

   A line is a call's name and its arguments, separated by spaces. An integer argument is decimal (negative allowed)
   or `$N`, the descriptor slot N that an earlier `path_open N ...` or `slot N FD` filled. A string argument is `'`
   followed by its bytes (`%XX` for any byte, `'` alone for the empty string), or `!` for a pointer out of bounds.
   An iovec list is `-` (none), `!` (the list itself out of bounds) or lengths joined by commas, `!` for an iovec
   whose buffer is out of bounds. Times, inodes and devices are left out of the output: they differ between two
   copies of a tree. A transfer shorter than asked is continued, as wasi-libc's stdio does, so a short count both
   implementations may answer leaves the same file behind. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))
#define OUT_OF_BOUNDS 0xFFFFFFF0u

IMPORT(fd_read) int32_t fd_read(int32_t, uint32_t, int32_t, uint32_t);
IMPORT(fd_write) int32_t fd_write(int32_t, uint32_t, int32_t, uint32_t);
IMPORT(fd_pread) int32_t fd_pread(int32_t, uint32_t, int32_t, int64_t, uint32_t);
IMPORT(fd_pwrite) int32_t fd_pwrite(int32_t, uint32_t, int32_t, int64_t, uint32_t);
IMPORT(fd_seek) int32_t fd_seek(int32_t, int64_t, int32_t, uint32_t);
IMPORT(fd_tell) int32_t fd_tell(int32_t, uint32_t);
IMPORT(fd_close) int32_t fd_close(int32_t);
IMPORT(fd_renumber) int32_t fd_renumber(int32_t, int32_t);
IMPORT(fd_fdstat_get) int32_t fd_fdstat_get(int32_t, uint32_t);
IMPORT(fd_fdstat_set_flags) int32_t fd_fdstat_set_flags(int32_t, int32_t);
IMPORT(fd_fdstat_set_rights) int32_t fd_fdstat_set_rights(int32_t, int64_t, int64_t);
IMPORT(fd_filestat_get) int32_t fd_filestat_get(int32_t, uint32_t);
IMPORT(fd_filestat_set_size) int32_t fd_filestat_set_size(int32_t, int64_t);
IMPORT(fd_filestat_set_times) int32_t fd_filestat_set_times(int32_t, int64_t, int64_t, int32_t);
IMPORT(fd_sync) int32_t fd_sync(int32_t);
IMPORT(fd_datasync) int32_t fd_datasync(int32_t);
IMPORT(fd_advise) int32_t fd_advise(int32_t, int64_t, int64_t, int32_t);
IMPORT(fd_allocate) int32_t fd_allocate(int32_t, int64_t, int64_t);
IMPORT(fd_prestat_get) int32_t fd_prestat_get(int32_t, uint32_t);
IMPORT(fd_prestat_dir_name) int32_t fd_prestat_dir_name(int32_t, uint32_t, int32_t);
IMPORT(fd_readdir) int32_t fd_readdir(int32_t, uint32_t, int32_t, int64_t, uint32_t);
IMPORT(path_open)
int32_t path_open(int32_t, int32_t, uint32_t, int32_t, int32_t, int64_t, int64_t, int32_t, uint32_t);
IMPORT(path_create_directory) int32_t path_create_directory(int32_t, uint32_t, int32_t);
IMPORT(path_remove_directory) int32_t path_remove_directory(int32_t, uint32_t, int32_t);
IMPORT(path_unlink_file) int32_t path_unlink_file(int32_t, uint32_t, int32_t);
IMPORT(path_rename) int32_t path_rename(int32_t, uint32_t, int32_t, int32_t, uint32_t, int32_t);
IMPORT(path_link) int32_t path_link(int32_t, int32_t, uint32_t, int32_t, int32_t, uint32_t, int32_t);
IMPORT(path_symlink) int32_t path_symlink(uint32_t, int32_t, int32_t, uint32_t, int32_t);
IMPORT(path_readlink) int32_t path_readlink(int32_t, uint32_t, int32_t, uint32_t, int32_t, uint32_t);
IMPORT(path_filestat_get) int32_t path_filestat_get(int32_t, int32_t, uint32_t, int32_t, uint32_t);
IMPORT(path_filestat_set_times)
int32_t path_filestat_set_times(int32_t, int32_t, uint32_t, int32_t, int64_t, int64_t, int32_t);
IMPORT(poll_oneoff) int32_t poll_oneoff(uint32_t, uint32_t, int32_t, uint32_t);
IMPORT(clock_time_get) int32_t clock_time_get(int32_t, int64_t, uint32_t);
IMPORT(clock_res_get) int32_t clock_res_get(int32_t, uint32_t);
IMPORT(random_get) int32_t random_get(uint32_t, int32_t);
IMPORT(args_sizes_get) int32_t args_sizes_get(uint32_t, uint32_t);
IMPORT(args_get) int32_t args_get(uint32_t, uint32_t);
IMPORT(environ_sizes_get) int32_t environ_sizes_get(uint32_t, uint32_t);
IMPORT(environ_get) int32_t environ_get(uint32_t, uint32_t);
IMPORT(sched_yield) int32_t sched_yield(void);
IMPORT(proc_exit) _Noreturn void proc_exit(int32_t);
IMPORT(proc_raise) int32_t proc_raise(int32_t);
IMPORT(sock_accept) int32_t sock_accept(int32_t, int32_t, uint32_t);
IMPORT(sock_recv) int32_t sock_recv(int32_t, uint32_t, int32_t, int32_t, uint32_t, uint32_t);
IMPORT(sock_send) int32_t sock_send(int32_t, uint32_t, int32_t, int32_t, uint32_t);
IMPORT(sock_shutdown) int32_t sock_shutdown(int32_t, int32_t);

#define MAX_SCRIPT (1 << 20)
#define MAX_OUT (1 << 17)
#define MAX_DATA (1 << 16)
#define MAX_IOVS 1100

static char script[MAX_SCRIPT];
static char out[MAX_OUT];
static uint32_t out_used;
static uint8_t data[MAX_DATA];
static uint32_t iovs[MAX_IOVS * 2];
static int64_t slots[64];
static char *cursor;
static char strings[4][4096];
static int string_count;
static uint64_t results[8];
static uint8_t big[1 << 20];
static int32_t out_fd = 1; /* stdout, wherever fd_renumber moved it */

static void put(const char *text) {
    size_t n = strlen(text);
    if (out_used + n < MAX_OUT) memcpy(out + out_used, text, n), out_used += n;
}

static void put_int(int64_t value) {
    char text[24];
    int at = 23;
    uint64_t magnitude = value < 0 ? -(uint64_t)value : (uint64_t)value;
    text[at] = 0;
    do text[--at] = '0' + magnitude % 10; while (magnitude /= 10);
    if (value < 0) text[--at] = '-';
    put(" ");
    put(text + at);
}

static void put_bytes(const uint8_t *bytes, uint32_t length) {
    static const char hex[] = "0123456789abcdef";
    put(" '");
    for (uint32_t i = 0; i < length && out_used + 3 < MAX_OUT; i++) {
        uint8_t c = bytes[i];
        if (c > ' ' && c < 127 && c != '%') out[out_used++] = c;
        else out[out_used++] = '%', out[out_used++] = hex[c >> 4], out[out_used++] = hex[c & 15];
    }
}

static void flush(void) {
    uint32_t done = 0;
    while (done < out_used) {
        iovs[0] = (uint32_t)(uintptr_t)(out + done), iovs[1] = out_used - done;
        uint32_t n = 0;
        if (fd_write(out_fd, (uint32_t)(uintptr_t)iovs, 1, (uint32_t)(uintptr_t)&n) || n == 0) break;
        done += n;
    }
    out_used = 0;
}

static char *token(void) {
    while (*cursor == ' ') cursor++;
    if (*cursor == '\n' || *cursor == 0) return NULL;
    char *start = cursor;
    while (*cursor && *cursor != ' ' && *cursor != '\n') cursor++;
    if (*cursor == ' ') *cursor++ = 0;
    return start;
}

static int64_t integer(void) {
    char *text = token();
    if (!text) return 0;
    if (*text == '$') return slots[atoi(text + 1) & 63];
    return strtoll(text, NULL, 10);
}

static int hex_digit(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

/* A string argument: its pointer (to guest memory, or out of bounds) and its length. */
static uint32_t string(uint32_t *length) {
    char *text = token();
    int index = string_count++ & 3;
    if (!text || *text == '!') return *length = 8, OUT_OF_BOUNDS;
    uint32_t n = 0;
    for (text++; *text && n < sizeof strings[index]; text++)
        if (*text == '%' && text[1] && text[2]) strings[index][n++] = hex_digit(text[1]) * 16 + hex_digit(text[2]), text += 2;
        else strings[index][n++] = *text;
    *length = n;
    return (uint32_t)(uintptr_t)strings[index];
}

/* An iovec list over `data`; its count, and in `*total` what its buffers hold. */
static uint32_t iovec_list(uint32_t *list, uint32_t *total) {
    char *text = token();
    uint32_t count = 0, used = 0;
    *total = 0;
    *list = (uint32_t)(uintptr_t)iovs;
    if (!text || *text == '-') return 0;
    if (*text == '!') return *list = OUT_OF_BOUNDS, 1;
    while (*text && count < MAX_IOVS) {
        if (*text == '!') iovs[2 * count] = OUT_OF_BOUNDS, iovs[2 * count + 1] = 8, text++;
        else {
            uint32_t length = strtoul(text, &text, 10);
            if (used + length > MAX_DATA) length = MAX_DATA - used;
            iovs[2 * count] = (uint32_t)(uintptr_t)(data + used), iovs[2 * count + 1] = length;
            used += length, *total += length;
        }
        count++;
        if (*text == ',') text++;
    }
    return count;
}

static void fill_pattern(uint32_t count, int seed) {
    for (uint32_t i = 0; i < count; i++) {
        uint32_t address = iovs[2 * i], length = iovs[2 * i + 1];
        if (address == OUT_OF_BOUNDS) continue;
        for (uint32_t j = 0; j < length; j++) ((uint8_t *)(uintptr_t)address)[j] = 'a' + (seed + j) % 26;
    }
}

/* Drops the first `n` bytes of the iovec list at `*list`: its new start and count, so a short transfer goes on. */
static uint32_t advance(uint32_t *list, uint32_t count, uint32_t n) {
    uint32_t *vector = (uint32_t *)(uintptr_t)*list;
    while (count && n >= vector[1]) n -= vector[1], vector += 2, count--;
    if (count) vector[0] += n, vector[1] -= n;
    *list = (uint32_t)(uintptr_t)vector;
    return count;
}

static void put_iovec_bytes(const uint32_t *vector, uint32_t count, uint32_t n) {
    for (uint32_t i = 0; i < count && n; i++) {
        uint32_t length = vector[2 * i + 1] < n ? vector[2 * i + 1] : n;
        if (vector[2 * i] != OUT_OF_BOUNDS) put_bytes((const uint8_t *)(uintptr_t)vector[2 * i], length);
        n -= length;
    }
}

/* fd_read, fd_write, fd_pread, fd_pwrite FD IOVECS [OFFSET]: continued while a call moves some bytes and fewer
   than asked; the errno, the bytes moved, and those read. */
static int32_t transfer(const char *name, int32_t fd) {
    static uint32_t original[MAX_IOVS * 2];
    uint32_t list, total, n, moved = 0;
    int positional = name[3] == 'p', writing = name[positional ? 4 : 3] == 'w';
    uint32_t count = iovec_list(&list, &total), first_count = count;
    int64_t offset = positional ? integer() : 0;
    int32_t error;
    memcpy(original, iovs, sizeof original);
    if (writing && list != OUT_OF_BOUNDS) fill_pattern(count, fd + (int)offset);
    for (;;) {
        n = 0;
        uint32_t at = (uint32_t)(uintptr_t)&n;
        if (positional)
            error = writing ? fd_pwrite(fd, list, count, offset + moved, at) : fd_pread(fd, list, count, offset + moved, at);
        else
            error = writing ? fd_write(fd, list, count, at) : fd_read(fd, list, count, at);
        if (error || n == 0) break;
        moved += n;
        if (moved >= total) break;
        count = advance(&list, count, n);
    }
    put_int(error);
    put_int(moved);
    if (!writing && first_count && original[0] != OUT_OF_BOUNDS) put_iovec_bytes(original, first_count, moved);
    return error;
}

/* A path call, or fd_readdir, under a descriptor open on something other than a directory: NOTDIR here, as
   mkdirat(2) and getdents(2) answer, BADF in Wasmtime's WASI (README's "WASI preview 1 conformance" list);
   printed as NOTDIR from both. */
static int32_t under(int32_t fd, int32_t error) {
    uint8_t stat[24];
    if ((error == 8 || error == 54) && !fd_fdstat_get(fd, (uint32_t)(uintptr_t)stat) && stat[0] != 3) return 54;
    return error;
}

static void put_filestat(const uint8_t *stat) {
    uint64_t size, nlink;
    memcpy(&nlink, stat + 24, 8);
    memcpy(&size, stat + 32, 8);
    put_int(stat[16]);
    put_int((int64_t)nlink);
    put_int((int64_t)size);
    uint64_t mtim;
    memcpy(&mtim, stat + 48, 8);
    put_int(mtim < 100000000000000000ull ? (int64_t)mtim : -1);  /* a time set explicitly, or "now"-ish */
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* fd_readdir in buffers of `size` bytes from cookie 0, on from each last whole entry's d_next, until a buffer
   comes back not full: the names and types, sorted (the order is the directory's own). */
static int32_t readdir_all(int32_t fd, uint32_t size) {
    static uint8_t buffer[8192];
    static char names[16384];
    static char *sorted[512];
    uint32_t names_used = 0, count = 0, rounds = 0;
    uint64_t cookie = 0;
    int32_t error = 0;
    if (size > sizeof buffer) size = sizeof buffer;
    for (;;) {
        uint32_t used = 0;
        error = fd_readdir(fd, (uint32_t)(uintptr_t)buffer, size, cookie, (uint32_t)(uintptr_t)&used);
        if (error || ++rounds > 200) break;
        uint32_t at = 0, whole = 0;
        while (at + 24 <= used) {
            uint32_t length;
            memcpy(&length, buffer + at + 16, 4);
            if (at + 24 + length > used) break;
            memcpy(&cookie, buffer + at, 8);
            if (count < 512 && names_used + length + 4 < sizeof names) {
                sorted[count++] = names + names_used;
                memcpy(names + names_used, buffer + at + 24, length);
                names_used += length;
                names[names_used++] = ':';
                names[names_used++] = '0' + buffer[at + 20];
                names[names_used++] = 0;
            }
            at += 24 + length, whole++;
        }
        if (used < size) break;
        if (!whole) {
            put(" too-small");
            break;
        }
    }
    qsort(sorted, count, sizeof *sorted, compare_names);
    put_int(error = under(fd, error));
    for (uint32_t i = 0; i < count; i++) put_bytes((const uint8_t *)sorted[i], strlen(sorted[i]));
    return error;
}

static int32_t poll(void) {
    /* poll_oneoff FD...: a clock subscription of 20 ms, and an fd_read or fd_write subscription for each FD given
       as r<FD> or w<FD>; the descriptors' events are printed in the order they were subscribed. */
    static uint8_t subscriptions[16 * 48], events[16 * 32];
    uint32_t count = 0, n = 0;
    memset(subscriptions, 0, sizeof subscriptions);
    char *text;
    subscriptions[8] = 0;  /* clock */
    uint64_t timeout = 20000000; /* 20 ms, for every descriptor to be ready in both */
    memcpy(subscriptions + 24, &timeout, 8);
    count = 1;
    while ((text = token()) && count < 16) {
        uint8_t *s = subscriptions + 48 * count;
        uint64_t userdata = count;
        memcpy(s, &userdata, 8);
        s[8] = *text == 'w' ? 2 : 1;
        int32_t fd = text[1] == '$' ? (int32_t)slots[atoi(text + 2) & 63] : atoi(text + 1);
        memcpy(s + 16, &fd, 4);
        count++;
    }
    int32_t error = poll_oneoff((uint32_t)(uintptr_t)subscriptions, (uint32_t)(uintptr_t)events, count,
                                (uint32_t)(uintptr_t)&n);
    put_int(error);
    if (error) return error;
    /* Whether the clock fired with the descriptors is timing; only the descriptors' events are compared. */
    for (uint32_t want = 1; want < count; want++)
        for (uint32_t i = 0; i < n; i++) {
            uint64_t userdata;
            memcpy(&userdata, events + 32 * i, 8);
            if (userdata != want) continue;
            uint16_t event_error;
            memcpy(&event_error, events + 32 * i + 8, 2);
            put_int(want);
            put_int(event_error);
            put_int(events[32 * i + 10]);
        }
    return 0;
}

struct entry {
    uint64_t at, next, ino; /* at: the cookie that lists it first */
    uint32_t length;
    uint8_t type;
    char name[64];
};

/* The whole entries of one fd_readdir buffer (`used` bytes of `big`), added to `found` (at most `max`) after its
   `*count`, each listed at `*cookie`, which moves past it: how many whole entries the buffer held. */
static uint32_t take_entries(uint32_t used, struct entry *found, uint32_t max, uint32_t *count, uint64_t *cookie) {
    uint32_t at = 0, whole = 0;
    while (at + 24 <= used) {
        struct entry e;
        memcpy(&e.next, big + at, 8), memcpy(&e.ino, big + at + 8, 8), memcpy(&e.length, big + at + 16, 4);
        if (at + 24 + e.length > used) break;
        e.type = big[at + 20], e.at = *cookie;
        memset(e.name, 0, sizeof e.name);
        memcpy(e.name, big + at + 24, e.length < 63 ? e.length : 63);
        if (*count < max) found[(*count)++] = e;
        *cookie = e.next, at += 24 + e.length, whole++;
    }
    return whole;
}

/* Every entry of a directory from `cookie` on, read in buffers of `size` bytes as readdir_all does, in the order
   listed, added to `found` after its `*count`: the errno. */
static int32_t read_on(int32_t fd, uint32_t size, uint64_t cookie, struct entry *found, uint32_t max, uint32_t *count) {
    if (size > sizeof big) size = sizeof big;
    for (uint32_t rounds = 0; rounds < 400; rounds++) {
        uint32_t used = 0;
        int32_t error = fd_readdir(fd, (uint32_t)(uintptr_t)big, size, cookie, (uint32_t)(uintptr_t)&used);
        if (error) return error;
        if (!take_entries(used, found, max, count, &cookie) || used < size) return 0;
    }
    return 0;
}

static int32_t collect(int32_t fd, uint32_t size, struct entry *found, uint32_t max, uint32_t *count) {
    *count = 0;
    return read_on(fd, size, 0, found, max, count);
}

static int name_listed(const struct entry *found, uint32_t count, const char *name) {
    int seen = 0;
    for (uint32_t i = 0; i < count; i++) seen += !strcmp(found[i].name, name);
    return seen;
}

/* readdir_walk FD SIZE: the listing's own consistency, which both implementations owe whatever their order: each
   entry's cookie lists it first again, its d_next past the last lists nothing, a cookie far past the end either,
   each name's d_ino and d_type are path_filestat_get's (not following links), `.` is the descriptor's own inode.
   Prints the errno, the count, and how many entries break each. A buffer too small for an entry stops the walk
   before it (no cookie passes it): where depends on the order, so the script's sizes hold any name it makes. */
static int32_t readdir_walk(int32_t fd, uint32_t size) {
    static struct entry found[256];
    uint32_t count, resumed_wrong = 0, ino_wrong = 0, type_wrong = 0, stat_failed = 0, used = 0;
    int32_t error = collect(fd, size, found, 256, &count);
    put_int(under(fd, error));
    if (error) return error;
    put_int(count);
    for (uint32_t i = 0; i < count; i++) {
        struct entry again;
        uint32_t n = 0;
        if (fd_readdir(fd, (uint32_t)(uintptr_t)big, 4096, found[i].at, (uint32_t)(uintptr_t)&n) || n < 24)
            resumed_wrong++;
        else {
            memcpy(&again.length, big + 16, 4);
            resumed_wrong += again.length != found[i].length || memcmp(big + 24, found[i].name, again.length < 63 ? again.length : 63);
        }
        if (!strcmp(found[i].name, ".") || !strcmp(found[i].name, "..")) continue;
        uint8_t stat[64];
        if (path_filestat_get(fd, 0, (uint32_t)(uintptr_t)found[i].name, found[i].length, (uint32_t)(uintptr_t)stat)) {
            stat_failed++;
            continue;
        }
        uint64_t ino;
        memcpy(&ino, stat + 8, 8);
        ino_wrong += ino != found[i].ino, type_wrong += stat[16] != found[i].type;
    }
    put_int(resumed_wrong), put_int(ino_wrong), put_int(type_wrong), put_int(stat_failed);
    error = fd_readdir(fd, (uint32_t)(uintptr_t)big, 4096, count ? found[count - 1].next : 0, (uint32_t)(uintptr_t)&used);
    put_int(error), put_int(used);
    used = 0;
    error = fd_readdir(fd, (uint32_t)(uintptr_t)big, 4096, 1ull << 40, (uint32_t)(uintptr_t)&used);
    put_int(error), put_int(used);
    uint8_t stat[64];
    uint64_t ino;
    if (count && !strcmp(found[0].name, ".") && !fd_filestat_get(fd, (uint32_t)(uintptr_t)stat))
        memcpy(&ino, stat + 8, 8), put_int(ino == found[0].ino);
    return 0;
}

/* readdir_cut FD SIZE: one fd_readdir at cookie 0 into SIZE bytes: the errno, the bytes used, and of each entry
   in them, whole or cut, its d_next, d_namlen, d_type and name as far as they came (not its inode). */
static int32_t readdir_cut(int32_t fd, uint32_t size) {
    uint32_t used = 0;
    memset(big, 0xAA, 4096);
    if (size > 4096) size = 4096;
    int32_t error = under(fd, fd_readdir(fd, (uint32_t)(uintptr_t)big, size, 0, (uint32_t)(uintptr_t)&used));
    put_int(error);
    if (error) return error;
    put_int(used);
    put_int(big[used] == 0xAA); /* nothing written past what it says it used */
    for (uint32_t at = 0, entries = 0; at < used && entries < 2; entries++) {
        uint64_t next = 0;
        uint32_t length = 0, left = used - at;
        memcpy(&next, big + at, left < 8 ? left : 8);
        put_int((int64_t)next);
        if (left < 20) break;
        memcpy(&length, big + at + 16, 4);
        put_int(length);
        if (left < 21) break;
        put_int(big[at + 20]);
        put_bytes(big + at + 24, left <= 24 ? 0 : left - 24 < length ? left - 24 : length);
        at += 24 + length;
    }
    return 0;
}

/* readdir_change FD SIZE OP 'NAME: a listing read in SIZE buffers, with OP done under FD after its first buffer
   (c: create a file NAME, u: unlink it, m: make a directory, r: remove one); the errno of OP, how many of the names
   listed before and after OP were not listed exactly once across it (POSIX: none), and whether NAME was. */
static int32_t readdir_change(int32_t fd, uint32_t size) {
    static struct entry before[256], after[256], during[512];
    uint32_t before_count, after_count, count = 0, used = 0, length;
    char *op = token();
    uint32_t name = string(&length);
    int32_t error = collect(fd, 4096, before, 256, &before_count);
    put_int(under(fd, error));
    if (error || !op) return error;
    if (size > 4096) size = 4096;
    error = fd_readdir(fd, (uint32_t)(uintptr_t)big, size, 0, (uint32_t)(uintptr_t)&used);
    uint64_t cookie = 0;
    if (!error) take_entries(used, during, 512, &count, &cookie);
    int32_t opened = -1, done;
    if (*op == 'c') {
        done = path_open(fd, 0, name, length, 1, 0x3fffffff, 0x3fffffff, 0, (uint32_t)(uintptr_t)&opened);
        if (!done) fd_close(opened);
    } else
        done = *op == 'u' ? path_unlink_file(fd, name, length)
               : *op == 'm' ? path_create_directory(fd, name, length)
                            : path_remove_directory(fd, name, length);
    put_int(done);
    if (!error && count) error = read_on(fd, size, cookie, during, 512, &count);
    put_int(error);
    collect(fd, 4096, after, 256, &after_count);
    uint32_t not_once = 0;
    for (uint32_t i = 0; i < before_count; i++)
        if (name_listed(after, after_count, before[i].name)) not_once += name_listed(during, count, before[i].name) != 1;
    put_int(not_once);
    char named[64] = {0};
    memcpy(named, (char *)(uintptr_t)name, length < 63 ? length : 63);
    put_int(name_listed(during, count, named) > 0);
    return error;
}

/* poll TOKEN...: subscriptions as the tokens say, each its index as userdata, unless `u` sets one:
   c<ID>:<r|a>:<NS>  a clock subscription, relative or absolute (NS past the clock's reading when made);
   r<FD>, w<FD>      fd_read, fd_write; x a subscription of an event type WASI does not define;
   !s, !e, !n        the subscriptions, the events or the count written out of bounds; uN  userdata N for the next.
   Prints the errno, the events' count, and each event's userdata, errno, type and flags, in userdata order; of a
   clock not due when subscribed (a timeout past 0), or any clock beside a descriptor, neither: whether it fired
   with the others is timing (Wasmtime may answer a due clock before a file it has not yet looked at). */
static int32_t poll_many(void) {
    static uint8_t subscriptions[16 * 48], events[16 * 32];
    uint32_t count = 0, n = 0, where_subscriptions = (uint32_t)(uintptr_t)subscriptions;
    uint32_t where_events = (uint32_t)(uintptr_t)events, where_n = (uint32_t)(uintptr_t)&n;
    uint64_t userdata = 0, timing[16], clocks[16];
    int user_set = 0, timings = 0, clock_count = 0, descriptors = 0;
    char *text;
    memset(subscriptions, 0, sizeof subscriptions);
    memset(events, 0, sizeof events);
    while ((text = token()) && count < 16) {
        uint8_t *s = subscriptions + 48 * count;
        if (*text == '!') {
            if (text[1] == 's') where_subscriptions = OUT_OF_BOUNDS;
            else if (text[1] == 'e') where_events = OUT_OF_BOUNDS;
            else where_n = OUT_OF_BOUNDS;
            continue;
        }
        if (*text == 'u') {
            userdata = strtoull(text + 1, NULL, 10), user_set = 1;
            continue;
        }
        uint64_t data = user_set ? userdata : count;
        user_set = 0;
        memcpy(s, &data, 8);
        if (*text == 'c') {
            char *rest;
            int32_t id = strtol(text + 1, &rest, 10);
            int absolute = rest[0] && rest[1] == 'a';
            uint64_t timeout = rest[0] && rest[1] && rest[2] ? strtoull(rest + 3, NULL, 10) : 0, now = 0;
            clocks[clock_count++] = data;
            if (timeout) timing[timings++] = data;
            if (absolute && !clock_time_get(id, 1, (uint32_t)(uintptr_t)&now)) timeout += now;
            uint16_t flags = absolute;
            s[8] = 0;
            memcpy(s + 16, &id, 4), memcpy(s + 24, &timeout, 8), memcpy(s + 40, &flags, 2);
        } else {
            descriptors++;
            s[8] = *text == 'w' ? 2 : *text == 'r' ? 1 : 7;
            int32_t fd = text[1] == '$' ? (int32_t)slots[atoi(text + 2) & 63] : atoi(text + 1);
            memcpy(s + 16, &fd, 4);
        }
        count++;
    }
    if (descriptors)
        for (int c = 0; c < clock_count; c++) timing[timings++] = clocks[c];
    int32_t error = poll_oneoff(where_subscriptions, where_events, count, where_n);
    put_int(error);
    if (error) return error;
    uint32_t shown = 0;
    for (uint32_t i = 0; i < n && i < 16; i++) {
        uint64_t data;
        int timed = 0;
        memcpy(&data, events + 32 * i, 8);
        for (int t = 0; t < timings; t++) timed |= timing[t] == data;
        shown += !timed;
    }
    put_int(n > 0), put_int(shown);
    for (uint64_t want = 0; want < 16; want++)
        for (uint32_t i = 0; i < n && i < 16; i++) {
            uint64_t data;
            uint16_t event_error, flags;
            int timed = 0;
            memcpy(&data, events + 32 * i, 8);
            for (int t = 0; t < timings; t++) timed |= timing[t] == data;
            if (data % 16 != want || timed) continue;
            memcpy(&event_error, events + 32 * i + 8, 2), memcpy(&flags, events + 32 * i + 24, 2);
            put_int((int64_t)data), put_int(event_error), put_int(events[32 * i + 10]), put_int(flags);
        }
    return 0;
}

/* clock_time_get's reading: 0 none, 1 under an hour, 2 under a year, 3 a date after 2020, 4 anything else. */
static int clock_class(uint64_t value) {
    if (!value) return 0;
    if (value < 3600000000000ull) return 1;
    if (value < 31536000000000000ull) return 2;
    if (value > 1577836800000000000ull && value < 4102444800000000000ull) return 3;
    return 4;
}

/* random_get LENGTH WHERE: into `data` (d), the 1 MiB buffer (b), across the end of memory (e), at its end (o), or
   out of bounds (!); the errno, and whether the bytes vary (more than a quarter of the values of a byte seen). */
static int32_t random_bytes(int64_t length, const char *where) {
    uint32_t memory = __builtin_wasm_memory_size(0) * 65536u, pointer = (uint32_t)(uintptr_t)data;
    uint8_t *bytes = data;
    if (*where == 'b') pointer = (uint32_t)(uintptr_t)big, bytes = big;
    if (*where == 'e') pointer = memory - (uint32_t)(length / 2), bytes = NULL;
    if (*where == 'o') pointer = memory, bytes = NULL;
    if (*where == '!') pointer = OUT_OF_BOUNDS, bytes = NULL;
    if (bytes) memset(bytes, 0, length > (int64_t)sizeof big ? sizeof big : (size_t)length);
    int32_t error = random_get(pointer, (int32_t)length);
    put_int(error);
    if (!error && bytes && length >= 256) {
        static uint8_t seen[256];
        uint32_t distinct = 0;
        memset(seen, 0, sizeof seen);
        for (int64_t i = 0; i < length; i++) distinct += !seen[bytes[i]], seen[bytes[i]] = 1;
        put_int(distinct > 64);
    }
    return error;
}

/* args, environ [WHERE]: their sizes, then each string (its length and a digest past 64 bytes); WHERE ! passes
   args_get/environ_get's pointers out of bounds, s the sizes' out of bounds. */
static int32_t strings_table(int args, const char *where) {
    static uint32_t pointers[4096];
    uint32_t r = (uint32_t)(uintptr_t)results, oob = where && *where == '!';
    int32_t error;
    if (where && *where == 's') r = OUT_OF_BOUNDS;
    error = args ? args_sizes_get(r, r + 8) : environ_sizes_get(r, r + 8);
    put_int(error), put_int((int64_t)results[0]), put_int((int64_t)results[1]);
    if (error || results[0] > 4096 || results[1] > sizeof big) return error;
    uint32_t list = oob ? OUT_OF_BOUNDS : (uint32_t)(uintptr_t)pointers, buffer = oob ? OUT_OF_BOUNDS : (uint32_t)(uintptr_t)big;
    error = args ? args_get(list, buffer) : environ_get(list, buffer);
    put_int(error);
    for (uint32_t i = 0; !error && i < results[0]; i++) {
        const uint8_t *text = (const uint8_t *)(uintptr_t)pointers[i];
        uint32_t length = strlen((const char *)text);
        if (length <= 64) put_bytes(text, length);
        else {
            uint32_t digest = 2166136261u;
            for (uint32_t j = 0; j < length; j++) digest = (digest ^ text[j]) * 16777619u;
            put_int(length), put_int(digest);
        }
    }
    return error;
}

static void run_line(void) {
    char *name = token();
    uint32_t p1, l1, p2, l2;
    uint32_t r = (uint32_t)(uintptr_t)results;
    int32_t error = 0;
    if (!name) return;
    put(name);
    memset(results, 0, sizeof results);
    if (!strcmp(name, "slot")) {
        int64_t index = integer();
        slots[index & 63] = integer();
        error = 0, put_int(error);
    } else if (!strcmp(name, "fd_read") || !strcmp(name, "fd_write") || !strcmp(name, "fd_pread") ||
               !strcmp(name, "fd_pwrite")) {
        error = transfer(name, (int32_t)integer());
    } else if (!strcmp(name, "fd_seek")) {
        int32_t fd = integer();
        int64_t offset = integer();
        error = fd_seek(fd, offset, integer(), r), put_int(error), put_int((int64_t)results[0]);
    } else if (!strcmp(name, "fd_tell")) {
        error = fd_tell(integer(), r), put_int(error), put_int((int64_t)results[0]);
    } else if (!strcmp(name, "fd_close")) {
        int32_t fd = integer();
        if (fd == out_fd) put(" kept"); /* the script's output */
        else error = fd_close(fd), put_int(error);
    } else if (!strcmp(name, "fd_renumber")) {
        int32_t from = integer(), to = integer();
        if (to == out_fd && from != out_fd) put(" kept");
        else if (!(error = fd_renumber(from, to), put_int(error), error) && from == out_fd) out_fd = to;
    } else if (!strcmp(name, "fd_fdstat_get")) {
        error = fd_fdstat_get(integer(), r), put_int(error);
        uint8_t *stat = (uint8_t *)results;
        put_int(stat[0]);
        put_int(stat[2] | stat[3] << 8);
        /* FD_READ and FD_WRITE of a file: the other rights, and a directory's, are a known difference */
        put_int(stat[0] == 4 ? (int)((results[1] & 2) >> 1 | (results[1] & 64) >> 5) : -1);
    } else if (!strcmp(name, "fd_fdstat_set_flags")) {
        int32_t fd = integer();
        error = fd_fdstat_set_flags(fd, integer()), put_int(error);
    } else if (!strcmp(name, "fd_fdstat_set_rights")) {
        int32_t fd = integer();
        int64_t base = integer(), inheriting = integer();
        if (fd == out_fd) put(" kept"); /* the script's output keeps its right to be written */
        else error = fd_fdstat_set_rights(fd, base, inheriting), put_int(error);
    } else if (!strcmp(name, "fd_filestat_get")) {
        error = fd_filestat_get(integer(), r), put_int(error);
        if (!error) put_filestat((uint8_t *)results);
    } else if (!strcmp(name, "fd_filestat_set_size")) {
        int32_t fd = integer();
        error = fd_filestat_set_size(fd, integer()), put_int(error);
    } else if (!strcmp(name, "fd_filestat_set_times")) {
        int32_t fd = integer();
        int64_t atim = integer(), mtim = integer();
        error = fd_filestat_set_times(fd, atim, mtim, integer()), put_int(error);
    } else if (!strcmp(name, "fd_sync")) {
        error = fd_sync(integer()), put_int(error);
    } else if (!strcmp(name, "fd_datasync")) {
        error = fd_datasync(integer()), put_int(error);
    } else if (!strcmp(name, "fd_advise")) {
        int32_t fd = integer();
        int64_t offset = integer(), length = integer();
        error = fd_advise(fd, offset, length, integer()), put_int(error);
    } else if (!strcmp(name, "fd_allocate")) {
        int32_t fd = integer();
        int64_t offset = integer();
        error = fd_allocate(fd, offset, integer()), put_int(error);
    } else if (!strcmp(name, "fd_prestat_get")) {
        error = fd_prestat_get(integer(), r), put_int(error), put_int((int64_t)(results[0] >> 32));
    } else if (!strcmp(name, "fd_prestat_dir_name")) {
        int32_t fd = integer();
        int32_t length = integer();
        memset(data, 0, 64);
        error = fd_prestat_dir_name(fd, (uint32_t)(uintptr_t)data, length), put_int(error);
        if (!error) put_bytes(data, length > 64 ? 64 : length);
    } else if (!strcmp(name, "fd_readdir")) {
        int32_t fd = integer();
        int32_t size = integer();
        error = readdir_all(fd, size);
    } else if (!strcmp(name, "path_open")) {
        int32_t slot = integer(), fd = integer(), lookup = integer();
        p1 = string(&l1);
        int32_t oflags = integer();
        int64_t base = integer(), inheriting = integer();
        int32_t fdflags = integer();
        uint32_t opened = 0xFFFFFFFF;
        error = under(fd, path_open(fd, lookup, p1, l1, oflags, base, inheriting, fdflags, (uint32_t)(uintptr_t)&opened));
        slots[slot & 63] = error ? -1 : (int32_t)opened;
        put_int(error);
        /* descriptors are numbered as each implementation likes: `slot` names them */
    } else if (!strcmp(name, "path_create_directory") || !strcmp(name, "path_remove_directory") ||
               !strcmp(name, "path_unlink_file")) {
        int32_t fd = integer();
        p1 = string(&l1);
        error = name[5] == 'c'   ? path_create_directory(fd, p1, l1)
                : name[5] == 'r' ? path_remove_directory(fd, p1, l1)
                                 : path_unlink_file(fd, p1, l1);
        error = under(fd, error);
        put_int(error);
    } else if (!strcmp(name, "path_rename")) {
        int32_t fd = integer();
        p1 = string(&l1);
        int32_t fd2 = integer();
        p2 = string(&l2);
        error = under(fd2, under(fd, path_rename(fd, p1, l1, fd2, p2, l2))), put_int(error);
    } else if (!strcmp(name, "path_link")) {
        int32_t fd = integer(), lookup = integer();
        p1 = string(&l1);
        int32_t fd2 = integer();
        p2 = string(&l2);
        error = under(fd2, under(fd, path_link(fd, lookup, p1, l1, fd2, p2, l2))), put_int(error);
    } else if (!strcmp(name, "path_symlink")) {
        p1 = string(&l1);
        int32_t fd = integer();
        p2 = string(&l2);
        error = under(fd, path_symlink(p1, l1, fd, p2, l2)), put_int(error);
    } else if (!strcmp(name, "path_readlink")) {
        int32_t fd = integer();
        p1 = string(&l1);
        int32_t size = integer();
        uint32_t used = 0, buffer = size < 0 ? OUT_OF_BOUNDS : (uint32_t)(uintptr_t)data;
        if (size < 0) size = 16;
        memset(data, 0, size < MAX_DATA ? size : MAX_DATA);
        error = under(fd, path_readlink(fd, p1, l1, buffer, size, (uint32_t)(uintptr_t)&used)), put_int(error);
        if (!error) put_int(used), put_bytes(data, used < (uint32_t)size ? used : (uint32_t)size);
    } else if (!strcmp(name, "path_filestat_get")) {
        int32_t fd = integer(), lookup = integer();
        p1 = string(&l1);
        error = under(fd, path_filestat_get(fd, lookup, p1, l1, r)), put_int(error);
        if (!error) put_filestat((uint8_t *)results);
    } else if (!strcmp(name, "path_filestat_set_times")) {
        int32_t fd = integer(), lookup = integer();
        p1 = string(&l1);
        int64_t atim = integer(), mtim = integer();
        error = under(fd, path_filestat_set_times(fd, lookup, p1, l1, atim, mtim, integer())), put_int(error);
    } else if (!strcmp(name, "poll_oneoff")) {
        error = poll();
    } else if (!strcmp(name, "clock_time_get")) {
        int32_t id = integer();
        error = clock_time_get(id, integer(), r), put_int(error);
    } else if (!strcmp(name, "clock_res_get")) {
        error = clock_res_get(integer(), r), put_int(error), put_int(results[0] > 0);
    } else if (!strcmp(name, "random_get")) {
        int32_t length = integer();
        error = random_get(length < 0 ? OUT_OF_BOUNDS : (uint32_t)(uintptr_t)data, length < 0 ? 8 : length);
        put_int(error);
    } else if (!strcmp(name, "args") || !strcmp(name, "environ")) {
        error = strings_table(name[0] == 'a', token());
    } else if (!strcmp(name, "fdstat")) {
        error = fd_fdstat_get(integer(), r), put_int(error);
        uint8_t *stat = (uint8_t *)results;
        if (!error) put_int(stat[0]), put_int(stat[2] | stat[3] << 8), put_int((int64_t)results[1]), put_int((int64_t)results[2]);
    } else if (!strcmp(name, "readdir_walk")) {
        int32_t fd = integer();
        error = readdir_walk(fd, integer());
    } else if (!strcmp(name, "readdir_cut")) {
        int32_t fd = integer();
        error = readdir_cut(fd, integer());
    } else if (!strcmp(name, "readdir_change")) {
        int32_t fd = integer();
        error = readdir_change(fd, integer());
    } else if (!strcmp(name, "poll")) {
        error = poll_many();
    } else if (!strcmp(name, "clock")) {
        int32_t id = integer();
        int64_t precision = integer();
        uint64_t value = 0;
        error = clock_time_get(id, precision, (uint32_t)(uintptr_t)&value), put_int(error), put_int(clock_class(value));
        value = 0;
        error = clock_res_get(id, (uint32_t)(uintptr_t)&value), put_int(error), put_int((int64_t)value);
    } else if (!strcmp(name, "random")) {
        int64_t length = integer();
        char *where = token();
        error = random_bytes(length, where ? where : "d");
    } else if (!strcmp(name, "proc_raise")) {
        error = proc_raise(integer()), put_int(error);
    } else if (!strcmp(name, "sock_accept")) {
        int32_t fd = integer();
        int32_t opened = -1;
        error = sock_accept(fd, integer(), (uint32_t)(uintptr_t)&opened), put_int(error);
    } else if (!strcmp(name, "sock_recv") || !strcmp(name, "sock_send")) {
        int32_t fd = integer();
        uint32_t list, total, n = 0, flags_out = 0;
        uint32_t count = iovec_list(&list, &total);
        int32_t flags = integer();
        error = name[5] == 'r' ? sock_recv(fd, list, count, flags, (uint32_t)(uintptr_t)&n, (uint32_t)(uintptr_t)&flags_out)
                               : sock_send(fd, list, count, flags, (uint32_t)(uintptr_t)&n);
        put_int(error);
    } else if (!strcmp(name, "sock_shutdown")) {
        int32_t fd = integer();
        error = sock_shutdown(fd, integer()), put_int(error);
    } else if (!strcmp(name, "sched_yield")) {
        error = sched_yield(), put_int(error);
    } else if (!strcmp(name, "proc_exit")) {
        int32_t code = integer();
        put("\n");
        flush();
        proc_exit(code);
    } else {
        put(" unknown");
    }
    put("\n");
}

/* The script: `.script` in the first preopen, removed once read so the tree is the test's alone; stdin without. */
static uint32_t read_script(void) {
    int32_t fd = 0;
    uint32_t used = 0, n;
    int from_file = !path_open(3, 0, (uint32_t)(uintptr_t) ".script", 7, 0, 2, 0, 0, (uint32_t)(uintptr_t)&fd);
    do {
        iovs[0] = (uint32_t)(uintptr_t)(script + used), iovs[1] = MAX_SCRIPT - 1 - used;
        n = 0;
        if (fd_read(fd, (uint32_t)(uintptr_t)iovs, 1, (uint32_t)(uintptr_t)&n)) break;
        used += n;
    } while (n && used < MAX_SCRIPT - 1);
    if (from_file) fd_close(fd), path_unlink_file(3, (uint32_t)(uintptr_t) ".script", 7);
    return used;
}

int main(void) {
    for (int i = 0; i < 64; i++) slots[i] = -1;
    script[read_script()] = 0;
    for (char *line = script; *line;) {
        char *end = strchr(line, '\n');
        if (end) *end = 0;
        cursor = line;
        run_line();
        flush(); /* each line as it is done: a call may trap */
        line = end ? end + 1 : line + strlen(line);
    }
    return 0;
}
