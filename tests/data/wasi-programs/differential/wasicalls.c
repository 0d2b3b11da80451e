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
        if (fd_write(1, (uint32_t)(uintptr_t)iovs, 1, (uint32_t)(uintptr_t)&n) || n == 0) break;
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
        error = fd_close(integer()), put_int(error);
    } else if (!strcmp(name, "fd_renumber")) {
        int32_t from = integer();
        error = fd_renumber(from, integer()), put_int(error);
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
        int64_t base = integer();
        error = fd_fdstat_set_rights(fd, base, integer()), put_int(error);
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
        static uint32_t pointers[64];
        static char buffer[4096];
        int args = name[0] == 'a';
        error = args ? args_sizes_get(r, r + 8) : environ_sizes_get(r, r + 8);
        put_int(error), put_int((int64_t)results[0]), put_int((int64_t)results[1]);
        if (!error && results[0] <= 64 && results[1] <= sizeof buffer) {
            error = args ? args_get((uint32_t)(uintptr_t)pointers, (uint32_t)(uintptr_t)buffer)
                         : environ_get((uint32_t)(uintptr_t)pointers, (uint32_t)(uintptr_t)buffer);
            put_int(error);
            for (uint32_t i = 0; !error && i < results[0]; i++)
                put_bytes((uint8_t *)(uintptr_t)pointers[i], strlen((char *)(uintptr_t)pointers[i]));
        }
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
