/* Raw WASI preview 1 calls at their edges, where the conformance suite is thin: poll_oneoff (clocks relative and
   absolute, descriptors, many, none), fdstat flags, renumber, positional I/O past the end, times set to now, links
   and short readlink buffers, renames over what exists, path_open's flag combinations, fd_readdir with tiny
   buffers and cookies, the errno of each failure, args and environ as the host lays them out, sockets, clocks,
   random_get at its sizes. Prints each result. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

#define E(label, call) printf("%-44s %d\n", label, (int)(call))
#include "sockets.h"
#define ROOT 3
#define FILE_RIGHTS                                                                                              \
    (__WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_WRITE | __WASI_RIGHTS_FD_SEEK | __WASI_RIGHTS_FD_TELL |           \
     __WASI_RIGHTS_FD_FDSTAT_SET_FLAGS | __WASI_RIGHTS_FD_FILESTAT_GET | __WASI_RIGHTS_FD_FILESTAT_SET_SIZE |  \
     __WASI_RIGHTS_FD_FILESTAT_SET_TIMES | __WASI_RIGHTS_POLL_FD_READWRITE | __WASI_RIGHTS_FD_SYNC)
#define DIR_RIGHTS (__WASI_RIGHTS_FD_READDIR | __WASI_RIGHTS_PATH_OPEN | __WASI_RIGHTS_FD_FILESTAT_GET)

static __wasi_fd_t open_file(const char *label, const char *path, __wasi_oflags_t oflags, __wasi_fdflags_t fdflags) {
    __wasi_fd_t fd = 0;
    __wasi_errno_t error = __wasi_path_open(ROOT, 1, path, oflags, FILE_RIGHTS, 0, fdflags, &fd);
    printf("%-44s %d\n", label, error);
    return error ? (__wasi_fd_t)-1 : fd;
}

static void put(const char *path, const char *text) {
    __wasi_fd_t fd = open_file(path, path, __WASI_OFLAGS_CREAT | __WASI_OFLAGS_TRUNC, 0);
    __wasi_size_t n;
    __wasi_fd_write(fd, &(__wasi_ciovec_t){(const uint8_t *)text, strlen(text)}, 1, &n);
    __wasi_fd_close(fd);
}

static void show(const char *path) {
    char buffer[256] = {0};
    __wasi_size_t n = 0;
    __wasi_fd_t fd = 0;
    __wasi_errno_t error = __wasi_path_open(ROOT, 1, path, 0, __WASI_RIGHTS_FD_READ, 0, 0, &fd);
    if (!error) error = __wasi_fd_read(fd, &(__wasi_iovec_t){(uint8_t *)buffer, sizeof buffer - 1}, 1, &n);
    printf("  %s: error %d, %u bytes:", path, error, n);
    for (__wasi_size_t i = 0; i < n; i++) printf(buffer[i] >= ' ' && buffer[i] < 127 ? "%c" : "\\%o", buffer[i]);
    printf("\n");
    if (!error) __wasi_fd_close(fd);
}

static __wasi_timestamp_t now(__wasi_clockid_t clock) {
    __wasi_timestamp_t t = 0;
    __wasi_clock_time_get(clock, 1, &t);
    return t;
}

static __wasi_subscription_t clock_at(__wasi_userdata_t userdata, __wasi_clockid_t clock, __wasi_timestamp_t timeout,
                                      __wasi_subclockflags_t flags) {
    __wasi_subscription_t s = {.userdata = userdata, .u = {.tag = __WASI_EVENTTYPE_CLOCK}};
    s.u.u.clock = (__wasi_subscription_clock_t){.id = clock, .timeout = timeout, .precision = 0, .flags = flags};
    return s;
}

static __wasi_subscription_t on_fd(__wasi_userdata_t userdata, __wasi_eventtype_t type, __wasi_fd_t fd) {
    __wasi_subscription_t s = {.userdata = userdata, .u = {.tag = type}};
    s.u.u.fd_read.file_descriptor = fd;
    return s;
}

/* One line per call: whether it waited at least `least_ms` (never how long: a loaded host sleeps longer). Events are
   shown in userdata order (which order they come in is not the specification's concern); more than four are counted:
   how many succeeded with bytes available. */
static __wasi_timestamp_t waiting_since; /* set before an absolute clock's target is read: the wait counts from there */

static void poll(const char *label, const __wasi_subscription_t *in, __wasi_size_t count, long least_ms) {
    static __wasi_event_t out[128];
    __wasi_size_t n = 0;
    __wasi_timestamp_t start = waiting_since ? waiting_since : now(__WASI_CLOCKID_MONOTONIC);
    waiting_since = 0;
    __wasi_errno_t error = __wasi_poll_oneoff(in, out, count, &n);
    long waited_ms = (long)((now(__WASI_CLOCKID_MONOTONIC) - start) / 1000000);
    printf("%-44s %d", label, error);
    if (!error) printf(", %u events, waited %s:", n, waited_ms >= least_ms ? "enough" : "too little");
    if (!error && n > 4) {
        int ready = 0;
        for (__wasi_size_t i = 0; i < n; i++) ready += !out[i].error && out[i].fd_readwrite.nbytes > 0;
        printf(" %d ready with bytes", ready);
    }
    for (__wasi_userdata_t want = 0; !error && n <= 4 && want < 256; want++)
        for (__wasi_size_t i = 0; i < n; i++)
            if (out[i].userdata == want)
                printf(" [%llu: error %d type %d bytes %d hangup %d]", (unsigned long long)want, out[i].error,
                       out[i].type, out[i].fd_readwrite.nbytes > 0,
                       out[i].fd_readwrite.flags & __WASI_EVENTRWFLAGS_FD_READWRITE_HANGUP);
    printf("\n");
}

static void polling(void) {
    __wasi_subscription_t s[100];
    __wasi_timestamp_t ms = 1000000;
    poll("poll none", s, 0, 0);
    s[0] = clock_at(1, __WASI_CLOCKID_MONOTONIC, 10 * ms, 0);
    poll("poll relative 10 ms", s, 1, 10);
    waiting_since = now(__WASI_CLOCKID_MONOTONIC);
    s[0] = clock_at(2, __WASI_CLOCKID_MONOTONIC, waiting_since + 10 * ms, __WASI_SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME);
    poll("poll absolute monotonic +10 ms", s, 1, 10);
    waiting_since = now(__WASI_CLOCKID_MONOTONIC);
    s[0] = clock_at(3, __WASI_CLOCKID_REALTIME, now(__WASI_CLOCKID_REALTIME) + 10 * ms, __WASI_SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME);
    poll("poll absolute realtime +10 ms", s, 1, 10);
    s[0] = clock_at(4, __WASI_CLOCKID_MONOTONIC, 1, __WASI_SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME);
    poll("poll absolute in the past", s, 1, 0);
    s[0] = clock_at(5, __WASI_CLOCKID_REALTIME, 0, 0);
    poll("poll relative 0", s, 1, 0);
    s[0] = clock_at(6, __WASI_CLOCKID_MONOTONIC, 5 * ms, 0);
    s[1] = clock_at(7, __WASI_CLOCKID_MONOTONIC, 2000 * ms, 0);
    poll("poll 5 ms and 2 s", s, 2, 5);
    s[0] = clock_at(8, __WASI_CLOCKID_MONOTONIC, 0, 0);
    s[1] = clock_at(9, __WASI_CLOCKID_REALTIME, 0, 0);
    poll("poll two due clocks", s, 2, 0);
    s[0] = on_fd(11, __WASI_EVENTTYPE_FD_READ, 0);
    poll("poll stdin readable", s, 1, 0);
    s[0] = on_fd(12, __WASI_EVENTTYPE_FD_WRITE, 1);
    s[1] = on_fd(13, __WASI_EVENTTYPE_FD_WRITE, 2);
    poll("poll stdout stderr writable", s, 2, 0);
    s[0] = on_fd(14, __WASI_EVENTTYPE_FD_WRITE, 1);
    s[1] = clock_at(15, __WASI_CLOCKID_MONOTONIC, 2000 * ms, 0);
    poll("poll stdout writable with a 2 s clock", s, 2, 0);
    s[0] = on_fd(16, __WASI_EVENTTYPE_FD_READ, 0);
    s[1] = clock_at(17, __WASI_CLOCKID_MONOTONIC, 2000 * ms, 0);
    poll("poll stdin with a 2 s clock", s, 2, 0);
    put("data/poll.txt", "0123456789");
    __wasi_fd_t file = open_file("open data/poll.txt", "data/poll.txt", 0, 0);
    /* One way per call: Wasmtime's answer to both at once has one event or two, as its threads race. */
    s[0] = on_fd(18, __WASI_EVENTTYPE_FD_READ, file);
    poll("poll a file for reading", s, 1, 0);
    s[0] = on_fd(19, __WASI_EVENTTYPE_FD_WRITE, file);
    poll("poll a file for writing", s, 1, 0);
    __wasi_fd_t plain;
    E("open it with FD_READ alone", __wasi_path_open(ROOT, 1, "data/poll.txt", 0, __WASI_RIGHTS_FD_READ, 0, 0, &plain));
    s[0] = on_fd(24, __WASI_EVENTTYPE_FD_READ, plain);
    poll("poll it without the poll right", s, 1, 0);
    __wasi_fd_close(plain);
    s[0] = on_fd(20, __WASI_EVENTTYPE_FD_READ, 99);
    poll("poll a closed descriptor", s, 1, 0);
    s[0] = on_fd(21, __WASI_EVENTTYPE_FD_READ, ROOT);
    poll("poll a directory", s, 1, 0);
    s[0] = on_fd(22, __WASI_EVENTTYPE_FD_WRITE, 1);
    s[1] = on_fd(23, __WASI_EVENTTYPE_FD_READ, 99);
    poll("poll stdout and a closed descriptor", s, 2, 0);
    for (int i = 0; i < 100; i++) s[i] = on_fd(100 + i, __WASI_EVENTTYPE_FD_WRITE, 1 + i % 2);
    poll("poll 100 descriptors", s, 100, 0);
    for (int i = 0; i < 100; i++) s[i] = clock_at(100 + i, __WASI_CLOCKID_MONOTONIC, i < 50 ? 0 : 3000 * ms, 0);
    poll("poll 100 clocks, 50 due", s, 100, 0);
    __wasi_fd_close(file);
}

static void flags(void) {
    __wasi_fdstat_t st;
    __wasi_size_t n;
    __wasi_filesize_t position;
    put("data/flags.txt", "abc");
    __wasi_fd_t fd = open_file("open data/flags.txt", "data/flags.txt", 0, 0);
    E("set APPEND", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_APPEND));
    E("fdstat", __wasi_fd_fdstat_get(fd, &st));
    printf("  flags %d type %d\n", st.fs_flags, st.fs_filetype);
    E("seek 0", __wasi_fd_seek(fd, 0, __WASI_WHENCE_SET, &position));
    E("write d", __wasi_fd_write(fd, &(__wasi_ciovec_t){(const uint8_t *)"d", 1}, 1, &n));
    E("tell", __wasi_fd_tell(fd, &position));
    printf("  position %llu\n", (unsigned long long)position);
    E("pwrite at 0 in append mode", __wasi_fd_pwrite(fd, &(__wasi_ciovec_t){(const uint8_t *)"P", 1}, 1, 0, &n));
    show("data/flags.txt");
    E("set NONBLOCK", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_NONBLOCK));
    E("fdstat", __wasi_fd_fdstat_get(fd, &st));
    printf("  flags %d\n", st.fs_flags);
    E("seek 0", __wasi_fd_seek(fd, 0, __WASI_WHENCE_SET, &position));
    E("write e after APPEND cleared", __wasi_fd_write(fd, &(__wasi_ciovec_t){(const uint8_t *)"e", 1}, 1, &n));
    show("data/flags.txt");
    E("set 0", __wasi_fd_fdstat_set_flags(fd, 0));
    E("set SYNC", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_SYNC));
    E("set DSYNC", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_DSYNC));
    E("set RSYNC", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_RSYNC));
    E("set APPEND on stdout", __wasi_fd_fdstat_set_flags(1, __WASI_FDFLAGS_APPEND));
    E("set NONBLOCK on stdin", __wasi_fd_fdstat_set_flags(0, __WASI_FDFLAGS_NONBLOCK));
    E("set APPEND on closed", __wasi_fd_fdstat_set_flags(99, __WASI_FDFLAGS_APPEND));
    __wasi_fd_close(fd);
    fd = open_file("open with APPEND", "data/flags.txt", 0, __WASI_FDFLAGS_APPEND);
    E("fdstat", __wasi_fd_fdstat_get(fd, &st));
    printf("  flags %d\n", st.fs_flags);
    E("write f", __wasi_fd_write(fd, &(__wasi_ciovec_t){(const uint8_t *)"f", 1}, 1, &n));
    __wasi_fd_close(fd);
    show("data/flags.txt");
    fd = open_file("open with NONBLOCK", "data/flags.txt", 0, __WASI_FDFLAGS_NONBLOCK);
    E("fdstat", __wasi_fd_fdstat_get(fd, &st));
    printf("  flags %d\n", st.fs_flags);
    __wasi_fd_close(fd);
    const struct { const char *label; __wasi_fdflags_t flag; } syncs[] = {
        {"open with SYNC", __WASI_FDFLAGS_SYNC}, {"open with DSYNC", __WASI_FDFLAGS_DSYNC},
        {"open with RSYNC", __WASI_FDFLAGS_RSYNC},
    };
    for (int i = 0; i < 3; i++) {
        __wasi_errno_t error = __wasi_path_open(ROOT, 1, "data/flags.txt", 0, FILE_RIGHTS, 0, syncs[i].flag, &fd);
        if (!error) error = __wasi_fd_fdstat_get(fd, &st);
        printf("%-44s %d, flags %d\n", syncs[i].label, error, error ? -1 : st.fs_flags);
        if (!error) __wasi_fd_close(fd);
    }
}

static void renumbering(void) {
    put("data/one", "one");
    put("data/two", "two");
    __wasi_fd_t one = open_file("open data/one", "data/one", 0, 0), two = open_file("open data/two", "data/two", 0, 0);
    char buffer[8] = {0};
    __wasi_size_t n = 0;
    E("renumber one to two", __wasi_fd_renumber(one, two));
    E("read two", __wasi_fd_read(two, &(__wasi_iovec_t){(uint8_t *)buffer, 7}, 1, &n));
    printf("  %u bytes %s\n", n, buffer);
    E("close one", __wasi_fd_close(one));
    E("renumber two to itself", __wasi_fd_renumber(two, two));
    E("renumber closed to two", __wasi_fd_renumber(one, two));
    E("renumber two to closed", __wasi_fd_renumber(two, 77));
    E("close two", __wasi_fd_close(two));
    E("close two again", __wasi_fd_close(two));
}

static void positional(void) {
    char buffer[16];
    __wasi_size_t n = 99;
    __wasi_filestat_t st;
    put("data/p.bin", "abc");
    __wasi_fd_t fd = open_file("open data/p.bin", "data/p.bin", 0, 0);
    E("pwrite at 10", __wasi_fd_pwrite(fd, &(__wasi_ciovec_t){(const uint8_t *)"Z", 1}, 1, 10, &n));
    E("filestat", __wasi_fd_filestat_get(fd, &st));
    printf("  size %llu\n", (unsigned long long)st.size);
    show("data/p.bin");
    E("pread at 11 (the end)", __wasi_fd_pread(fd, &(__wasi_iovec_t){(uint8_t *)buffer, 4}, 1, 11, &n));
    printf("  read %u\n", n);
    E("pread at 1000", __wasi_fd_pread(fd, &(__wasi_iovec_t){(uint8_t *)buffer, 4}, 1, 1000, &n));
    printf("  read %u\n", n);
    E("pread at 2^63", __wasi_fd_pread(fd, &(__wasi_iovec_t){(uint8_t *)buffer, 4}, 1, 1ULL << 63, &n));
    E("pwrite at 2^63", __wasi_fd_pwrite(fd, &(__wasi_ciovec_t){(const uint8_t *)"Z", 1}, 1, 1ULL << 63, &n));
    E("pread no iovecs", __wasi_fd_pread(fd, NULL, 0, 0, &n));
    printf("  read %u\n", n);
    __wasi_filesize_t position = 99;
    E("tell after p calls", __wasi_fd_tell(fd, &position));
    printf("  position %llu\n", (unsigned long long)position);
    E("pread stdin", __wasi_fd_pread(0, &(__wasi_iovec_t){(uint8_t *)buffer, 4}, 1, 0, &n));
    E("pwrite stdout", __wasi_fd_pwrite(1, &(__wasi_ciovec_t){(const uint8_t *)"Z", 1}, 1, 0, &n));
    E("pread a directory", __wasi_fd_pread(ROOT, &(__wasi_iovec_t){(uint8_t *)buffer, 4}, 1, 0, &n));
    E("seek before the start", __wasi_fd_seek(fd, -1, __WASI_WHENCE_SET, &position));
    E("seek past the end", __wasi_fd_seek(fd, 100, __WASI_WHENCE_END, &position));
    printf("  position %llu\n", (unsigned long long)position);
    E("read past the end", __wasi_fd_read(fd, &(__wasi_iovec_t){(uint8_t *)buffer, 4}, 1, &n));
    printf("  read %u\n", n);
    __wasi_fd_close(fd);
}

static void times(void) {
    __wasi_filestat_t st;
    put("data/t.txt", "t");
    E("symlink t.txt", __wasi_path_symlink("t.txt", ROOT, "data/tl"));
    __wasi_timestamp_t old = 1000000000ULL * 1000000000ULL, recent = 1577836800ULL * 1000000000ULL;
    E("set both", __wasi_path_filestat_set_times(ROOT, 1, "data/t.txt", old, old + 5, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM));
    __wasi_path_filestat_get(ROOT, 1, "data/t.txt", &st);
    printf("  atim %llu mtim %llu\n", (unsigned long long)st.atim, (unsigned long long)st.mtim);
    E("set mtim now", __wasi_path_filestat_set_times(ROOT, 1, "data/t.txt", 0, 0, __WASI_FSTFLAGS_MTIM_NOW));
    __wasi_path_filestat_get(ROOT, 1, "data/t.txt", &st);
    printf("  atim kept %d mtim recent %d\n", st.atim == old, st.mtim > recent);
    E("set atim now", __wasi_path_filestat_set_times(ROOT, 1, "data/t.txt", 0, 0, __WASI_FSTFLAGS_ATIM_NOW));
    __wasi_path_filestat_get(ROOT, 1, "data/t.txt", &st);
    printf("  atim recent %d\n", st.atim > recent);
    E("set atim and atim now", __wasi_path_filestat_set_times(ROOT, 1, "data/t.txt", old, 0, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_ATIM_NOW));
    E("set mtim and mtim now", __wasi_path_filestat_set_times(ROOT, 1, "data/t.txt", 0, old, __WASI_FSTFLAGS_MTIM | __WASI_FSTFLAGS_MTIM_NOW));
    E("set nothing", __wasi_path_filestat_set_times(ROOT, 1, "data/t.txt", 0, 0, 0));
    E("set through link", __wasi_path_filestat_set_times(ROOT, 1, "data/tl", old, old, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM));
    __wasi_path_filestat_get(ROOT, 1, "data/t.txt", &st);
    printf("  target mtim old %d\n", st.mtim == old);
    E("set on the link", __wasi_path_filestat_set_times(ROOT, 0, "data/tl", 0, old + 7, __WASI_FSTFLAGS_MTIM));
    __wasi_path_filestat_get(ROOT, 0, "data/tl", &st);
    printf("  link mtim %llu\n", (unsigned long long)st.mtim);
    __wasi_path_filestat_get(ROOT, 1, "data/tl", &st);
    printf("  target mtim old %d\n", st.mtim == old);
    E("set missing", __wasi_path_filestat_set_times(ROOT, 1, "data/none", 0, 0, __WASI_FSTFLAGS_MTIM_NOW));
    __wasi_fd_t fd = open_file("open data/t.txt", "data/t.txt", 0, 0);
    E("fd set both now", __wasi_fd_filestat_set_times(fd, 0, 0, __WASI_FSTFLAGS_ATIM_NOW | __WASI_FSTFLAGS_MTIM_NOW));
    __wasi_fd_filestat_get(fd, &st);
    printf("  atim recent %d mtim recent %d\n", st.atim > recent, st.mtim > recent);
    E("fd set mtim and mtim now", __wasi_fd_filestat_set_times(fd, 0, old, __WASI_FSTFLAGS_MTIM | __WASI_FSTFLAGS_MTIM_NOW));
    __wasi_fd_close(fd);
}

static void links(void) {
    char buffer[64];
    __wasi_size_t n = 99;
    __wasi_filestat_t st;
    put("data/src", "source");
    E("mkdir data/dir", __wasi_path_create_directory(ROOT, "data/dir"));
    E("link src -> hard", __wasi_path_link(ROOT, 0, "data/src", ROOT, "data/hard"));
    __wasi_path_filestat_get(ROOT, 0, "data/hard", &st);
    printf("  nlink %llu size %llu\n", (unsigned long long)st.nlink, (unsigned long long)st.size);
    E("link onto existing", __wasi_path_link(ROOT, 0, "data/src", ROOT, "data/hard"));
    E("link a directory", __wasi_path_link(ROOT, 0, "data/dir", ROOT, "data/dirlink"));
    E("link missing", __wasi_path_link(ROOT, 0, "data/none", ROOT, "data/x"));
    E("link into missing dir", __wasi_path_link(ROOT, 0, "data/src", ROOT, "data/none/x"));
    E("link into a file", __wasi_path_link(ROOT, 0, "data/src", ROOT, "data/src/x"));
    E("link new/", __wasi_path_link(ROOT, 0, "data/src", ROOT, "data/new/"));
    E("symlink src -> soft", __wasi_path_symlink("src", ROOT, "data/soft"));
    E("symlink onto existing", __wasi_path_symlink("src", ROOT, "data/hard"));
    E("symlink onto a dir", __wasi_path_symlink("src", ROOT, "data/dir"));
    E("symlink empty target", __wasi_path_symlink("", ROOT, "data/empty"));
    E("symlink into missing dir", __wasi_path_symlink("src", ROOT, "data/none/x"));
    E("symlink soft2/", __wasi_path_symlink("src", ROOT, "data/soft2/"));
    E("symlink long target", __wasi_path_symlink("a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p", ROOT, "data/long"));
    for (__wasi_size_t size = 0; size <= 4; size++) {
        memset(buffer, '.', sizeof buffer);
        n = 99;
        char label[64];
        snprintf(label, sizeof label, "readlink into %u bytes", size);
        E(label, __wasi_path_readlink(ROOT, "data/soft", (uint8_t *)buffer, size, &n));
        printf("  used %u: %.4s\n", n, buffer);
    }
    E("readlink a long target into 8", __wasi_path_readlink(ROOT, "data/long", (uint8_t *)buffer, 8, &n));
    printf("  used %u: %.8s\n", n, buffer);
    E("readlink a file", __wasi_path_readlink(ROOT, "data/src", (uint8_t *)buffer, 8, &n));
    E("readlink a dir", __wasi_path_readlink(ROOT, "data/dir", (uint8_t *)buffer, 8, &n));
    E("readlink missing", __wasi_path_readlink(ROOT, "data/none", (uint8_t *)buffer, 8, &n));
    E("readlink soft/", __wasi_path_readlink(ROOT, "data/soft/", (uint8_t *)buffer, 8, &n));
    E("link through a symlink nofollow", __wasi_path_link(ROOT, 0, "data/soft", ROOT, "data/softlink"));
    __wasi_path_filestat_get(ROOT, 0, "data/softlink", &st);
    printf("  type %d\n", st.filetype);
    E("unlink soft/", __wasi_path_unlink_file(ROOT, "data/soft/"));
}

static void renames(void) {
    put("data/r1", "first");
    put("data/r2", "second");
    E("mkdir data/rd1", __wasi_path_create_directory(ROOT, "data/rd1"));
    E("mkdir data/rd2", __wasi_path_create_directory(ROOT, "data/rd2"));
    E("mkdir data/rd3", __wasi_path_create_directory(ROOT, "data/rd3"));
    put("data/rd3/inside", "x");
    E("rename file over file", __wasi_path_rename(ROOT, "data/r1", ROOT, "data/r2"));
    show("data/r2");
    E("rename dir over empty dir", __wasi_path_rename(ROOT, "data/rd1", ROOT, "data/rd2"));
    E("rename dir over non-empty dir", __wasi_path_rename(ROOT, "data/rd2", ROOT, "data/rd3"));
    E("rename file over dir", __wasi_path_rename(ROOT, "data/r2", ROOT, "data/rd2"));
    E("rename dir over file", __wasi_path_rename(ROOT, "data/rd2", ROOT, "data/r2"));
    E("rename file over itself", __wasi_path_rename(ROOT, "data/r2", ROOT, "data/r2"));
    E("rename dir over itself", __wasi_path_rename(ROOT, "data/rd2", ROOT, "data/rd2"));
    E("rename dir under itself", __wasi_path_rename(ROOT, "data/rd2", ROOT, "data/rd2/sub"));
    E("rename missing", __wasi_path_rename(ROOT, "data/none", ROOT, "data/x"));
    E("rename into missing dir", __wasi_path_rename(ROOT, "data/r2", ROOT, "data/none/x"));
    E("rename out of a file", __wasi_path_rename(ROOT, "data/r2/x", ROOT, "data/x"));
    E("rename file to x/", __wasi_path_rename(ROOT, "data/r2", ROOT, "data/x/"));
    E("rename dir to rd4/", __wasi_path_rename(ROOT, "data/rd2", ROOT, "data/rd4/"));
    E("rename dir/ over dir/", __wasi_path_rename(ROOT, "data/rd4/", ROOT, "data/rd3/"));
    E("rename the root", __wasi_path_rename(ROOT, ".", ROOT, "data/rootcopy"));
    E("rename over the root", __wasi_path_rename(ROOT, "data/rd4", ROOT, "."));
}

static void opening(void) {
    __wasi_fd_t fd;
    __wasi_filestat_t st;
    __wasi_fdstat_t fs;
    put("data/o.txt", "content");
    E("mkdir data/od", __wasi_path_create_directory(ROOT, "data/od"));
    open_file("CREAT|EXCL existing", "data/o.txt", __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, 0);
    fd = open_file("CREAT|EXCL new", "data/o2.txt", __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, 0);
    __wasi_fd_close(fd);
    fd = open_file("EXCL alone existing", "data/o.txt", __WASI_OFLAGS_EXCL, 0);
    if (fd != (__wasi_fd_t)-1) __wasi_fd_close(fd);
    open_file("EXCL alone missing", "data/o3.txt", __WASI_OFLAGS_EXCL, 0);
    open_file("CREAT|EXCL on a dir", "data/od", __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, 0);
    E("symlink dangling", __wasi_path_symlink("nowhere", ROOT, "data/dangling"));
    open_file("CREAT|EXCL on a dangling link", "data/dangling", __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, 0);
    open_file("CREAT on a dir", "data/od", __WASI_OFLAGS_CREAT, 0);
    open_file("CREAT new/", "data/new/", __WASI_OFLAGS_CREAT, 0);
    open_file("CREAT file/", "data/o.txt/", __WASI_OFLAGS_CREAT, 0);
    open_file("CREAT dir/", "data/od/", __WASI_OFLAGS_CREAT, 0);
    open_file("DIRECTORY|CREAT missing", "data/od4", __WASI_OFLAGS_DIRECTORY | __WASI_OFLAGS_CREAT, 0);
    open_file("DIRECTORY|CREAT a dir", "data/od", __WASI_OFLAGS_DIRECTORY | __WASI_OFLAGS_CREAT, 0);
    open_file("TRUNC a dir", "data/od", __WASI_OFLAGS_TRUNC, 0);
    open_file("DIRECTORY a file", "data/o.txt", __WASI_OFLAGS_DIRECTORY, 0);
    open_file("DIRECTORY|TRUNC a dir", "data/od", __WASI_OFLAGS_DIRECTORY | __WASI_OFLAGS_TRUNC, 0);
    open_file("DIRECTORY|CREAT|EXCL", "data/od2", __WASI_OFLAGS_DIRECTORY | __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, 0);
    open_file("DIRECTORY missing", "data/od3", __WASI_OFLAGS_DIRECTORY, 0);
    open_file("file/", "data/o.txt/", 0, 0);
    open_file("under a file", "data/o.txt/x", 0, 0);
    open_file("missing", "data/none", 0, 0);
    open_file("under missing", "data/none/x", 0, 0);
    fd = open_file("TRUNC a file", "data/o.txt", __WASI_OFLAGS_TRUNC, 0);
    __wasi_fd_filestat_get(fd, &st);
    printf("  size %llu\n", (unsigned long long)st.size);
    __wasi_fd_close(fd);
    put("data/o.txt", "content");
    E("TRUNC read-only", __wasi_path_open(ROOT, 1, "data/o.txt", __WASI_OFLAGS_TRUNC, __WASI_RIGHTS_FD_READ, 0, 0, &fd));
    E("dir as a dir", __wasi_path_open(ROOT, 1, "data/od", __WASI_OFLAGS_DIRECTORY, DIR_RIGHTS, DIR_RIGHTS, 0, &fd));
    E("fdstat of the dir", __wasi_fd_fdstat_get(fd, &fs));
    printf("  type %d flags %d\n", fs.fs_filetype, fs.fs_flags);
    E("path_open under it", __wasi_path_open(fd, 0, ".", 0, 0, 0, 0, &fd));
    E("no rights at all", __wasi_path_open(ROOT, 1, "data/o.txt", 0, 0, 0, 0, &fd));
    E("read it without the right", __wasi_fd_read(fd, &(__wasi_iovec_t){(uint8_t *)&st, 4}, 1, &(__wasi_size_t){0}));
    E("open '.'", __wasi_path_open(ROOT, 1, ".", 0, DIR_RIGHTS, DIR_RIGHTS, 0, &fd));
    E("open ''", __wasi_path_open(ROOT, 1, "", 0, DIR_RIGHTS, DIR_RIGHTS, 0, &fd));
}

static void reading_directories(void) {
    static uint8_t buffer[4096];
    __wasi_size_t used;
    __wasi_fd_t dir;
    E("mkdir data/rdir", __wasi_path_create_directory(ROOT, "data/rdir"));
    put("data/rdir/alpha", "a");
    put("data/rdir/beta", "b");
    E("mkdir data/rdir/gamma", __wasi_path_create_directory(ROOT, "data/rdir/gamma"));
    E("open data/rdir", __wasi_path_open(ROOT, 1, "data/rdir", __WASI_OFLAGS_DIRECTORY, DIR_RIGHTS, 0, 0, &dir));
    for (__wasi_size_t size = 0; size <= 26; size += 1) {
        if (size > 2 && size < 23) continue;
        used = 99;
        char label[64];
        snprintf(label, sizeof label, "readdir into %u bytes", size);
        E(label, __wasi_fd_readdir(dir, buffer, size, 0, &used));
        printf("  used %u\n", used);
    }
    /* Every entry, one per call: the buffer holds one header and a name, and the next call starts at its cookie. */
    char names[16][32];
    int count = 0;
    __wasi_dircookie_t cookie = 0;
    for (int guard = 0; guard < 16; guard++) {
        E("readdir one", __wasi_fd_readdir(dir, buffer, sizeof(__wasi_dirent_t) + 5, cookie, &used));
        if (used < sizeof(__wasi_dirent_t)) break;
        __wasi_dirent_t entry;
        memcpy(&entry, buffer, sizeof entry);
        __wasi_size_t shown = entry.d_namlen < used - sizeof entry ? entry.d_namlen : used - sizeof entry;
        snprintf(names[count++], sizeof names[0], "%.*s/%u/%d", (int)shown, (const char *)buffer + sizeof entry, entry.d_namlen, entry.d_type);
        cookie = entry.d_next;
    }
    qsort(names, count, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    printf("  %d entries:", count);
    for (int i = 0; i < count; i++) printf(" %s", names[i]);
    printf("\n");
    E("readdir at the last cookie", __wasi_fd_readdir(dir, buffer, sizeof buffer, cookie, &used));
    printf("  used %u\n", used);
    E("readdir at a huge cookie", __wasi_fd_readdir(dir, buffer, sizeof buffer, 1ULL << 62, &used));
    printf("  used %u\n", used);
    E("readdir a file", __wasi_fd_readdir(1, buffer, sizeof buffer, 0, &used));
    E("readdir closed", __wasi_fd_readdir(99, buffer, sizeof buffer, 0, &used));
    E("rmdir non-empty", __wasi_path_remove_directory(ROOT, "data/rdir"));
    E("rmdir a file", __wasi_path_remove_directory(ROOT, "data/rdir/alpha"));
    E("rmdir missing", __wasi_path_remove_directory(ROOT, "data/rdir/none"));
    E("unlink a dir", __wasi_path_unlink_file(ROOT, "data/rdir/gamma"));
    E("unlink missing", __wasi_path_unlink_file(ROOT, "data/rdir/none"));
    E("unlink under a file", __wasi_path_unlink_file(ROOT, "data/rdir/alpha/x"));
    E("mkdir existing", __wasi_path_create_directory(ROOT, "data/rdir/gamma"));
    E("mkdir over a file", __wasi_path_create_directory(ROOT, "data/rdir/alpha"));
    E("mkdir under a file", __wasi_path_create_directory(ROOT, "data/rdir/alpha/x"));
    E("filestat under a file", __wasi_path_filestat_get(ROOT, 0, "data/rdir/alpha/x", &(__wasi_filestat_t){0}));
    E("filestat file/", __wasi_path_filestat_get(ROOT, 0, "data/rdir/alpha/", &(__wasi_filestat_t){0}));
    __wasi_fd_close(dir);
}

static void command_line(void) {
    __wasi_size_t count = 0, size = 0;
    E("args_sizes_get", __wasi_args_sizes_get(&count, &size));
    printf("  %u args in %u bytes\n", count, size);
    char *buffer = malloc(size), **pointers = malloc((count + 1) * sizeof *pointers);
    E("args_get", __wasi_args_get((uint8_t **)pointers, (uint8_t *)buffer));
    for (__wasi_size_t i = 1; i < count; i++) printf("  arg %u at +%ld: %s\n", i, (long)(pointers[i] - buffer), pointers[i]);
    free(buffer);
    free(pointers);
    E("environ_sizes_get", __wasi_environ_sizes_get(&count, &size));
    printf("  %u variables in %u bytes\n", count, size);
    buffer = malloc(size), pointers = malloc((count + 1) * sizeof *pointers);
    E("environ_get", __wasi_environ_get((uint8_t **)pointers, (uint8_t *)buffer));
    for (__wasi_size_t i = 0; i < count; i++) printf("  variable %u at +%ld: %s\n", i, (long)(pointers[i] - buffer), pointers[i]);
    free(buffer);
    free(pointers);
}

static void the_rest(void) {
    __wasi_size_t n = 99;
    __wasi_fd_t fd = 99;
    __wasi_roflags_t roflags;
    uint8_t byte;
    SOCKET_CALL("sock_accept root", __wasi_sock_accept(ROOT, 0, &fd));
    SOCKET_CALL("sock_accept stdin", __wasi_sock_accept(0, 0, &fd));
    SOCKET_CALL("sock_accept closed", __wasi_sock_accept(99, 0, &fd));
    SOCKET_CALL("sock_recv stdin", __wasi_sock_recv(0, &(__wasi_iovec_t){&byte, 1}, 1, 0, &n, &roflags));
    SOCKET_CALL("sock_recv closed", __wasi_sock_recv(99, &(__wasi_iovec_t){&byte, 1}, 1, 0, &n, &roflags));
    SOCKET_CALL("sock_send stdout", __wasi_sock_send(1, &(__wasi_ciovec_t){&byte, 1}, 1, 0, &n));
    SOCKET_CALL("sock_send closed", __wasi_sock_send(99, &(__wasi_ciovec_t){&byte, 1}, 1, 0, &n));
    E("sock_shutdown closed", __wasi_sock_shutdown(99, __WASI_SDFLAGS_WR));
    E("sched_yield", __wasi_sched_yield());
    static uint8_t random[1 << 20];
    E("random_get 0", __wasi_random_get(random, 0));
    E("random_get 1 MiB", __wasi_random_get(random, sizeof random));
    int zeros = 0;
    for (size_t i = 0; i < sizeof random; i++) zeros += random[i] == 0;
    printf("  zero bytes under 1%% %d\n", zeros < (1 << 20) / 100);
    __wasi_timestamp_t t;
    for (__wasi_clockid_t clock = 0; clock < 4; clock++) {
        char label[64];
        snprintf(label, sizeof label, "clock_time_get %u", clock);
        E(label, __wasi_clock_time_get(clock, 0, &t));
        snprintf(label, sizeof label, "clock_res_get %u", clock);
        E(label, __wasi_clock_res_get(clock, &t));
    }
}

static void descriptors(void) {
    static uint8_t buffer[8192];
    __wasi_size_t n = 99;
    __wasi_fdstat_t fs;
    __wasi_filesize_t position;
    __wasi_subscription_t s[1];
    E("prestat_dir_name into 0 bytes", __wasi_fd_prestat_dir_name(ROOT, buffer, 0));
    E("prestat_dir_name into 8 bytes", __wasi_fd_prestat_dir_name(ROOT, buffer, 8));
    E("prestat_dir_name of stdout", __wasi_fd_prestat_dir_name(1, buffer, 8));
    E("write no iovecs to stdout", __wasi_fd_write(1, NULL, 0, &n));
    printf("  wrote %u\n", n);
    E("write no iovecs to a closed descriptor", __wasi_fd_write(99, NULL, 0, &n));
    E("read no iovecs from a closed descriptor", __wasi_fd_read(99, NULL, 0, &n));
    E("write to stdin", __wasi_fd_write(0, &(__wasi_ciovec_t){buffer, 1}, 1, &n));
    E("read from stdout", __wasi_fd_read(1, &(__wasi_iovec_t){buffer, 1}, 1, &n));
    E("tell stdout", __wasi_fd_tell(1, &position));
    E("seek stdin", __wasi_fd_seek(0, 0, __WASI_WHENCE_CUR, &position));
    E("pwrite stdin", __wasi_fd_pwrite(0, &(__wasi_ciovec_t){buffer, 1}, 1, 0, &n));
    E("sync stdout", __wasi_fd_sync(1));
    E("datasync stdout", __wasi_fd_datasync(1));
    E("sync a directory", __wasi_fd_sync(ROOT));
    E("allocate a directory", __wasi_fd_allocate(ROOT, 0, 1));
    E("set_size stdout", __wasi_fd_filestat_set_size(1, 0));
    E("set_times stdout", __wasi_fd_filestat_set_times(1, 0, 0, __WASI_FSTFLAGS_MTIM_NOW));
    E("advise stdout", __wasi_fd_advise(1, 0, 0, __WASI_ADVICE_NORMAL));
    E("fdstat stdin", __wasi_fd_fdstat_get(0, &fs));
    printf("  type %d flags %d\n", fs.fs_filetype, fs.fs_flags);
    size_t total = 0;
    for (int guard = 0; guard < 100; guard++) {
        __wasi_errno_t error = __wasi_fd_read(0, &(__wasi_iovec_t){buffer, sizeof buffer}, 1, &n);
        if (error || n == 0) break;
        total += n;
    }
    printf("stdin read to its end: %zu bytes\n", total);
    E("read stdin at its end", __wasi_fd_read(0, &(__wasi_iovec_t){buffer, 8}, 1, &n));
    printf("  read %u\n", n);
    s[0] = on_fd(30, __WASI_EVENTTYPE_FD_READ, 0);
    poll("poll stdin at its end", s, 1, 0);
    put("data/r.txt", "rights");
    __wasi_fd_t fd = open_file("open data/r.txt", "data/r.txt", 0, 0);
    E("narrow to read and seek", __wasi_fd_fdstat_set_rights(fd, __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_SEEK, 0));
    E("widen again", __wasi_fd_fdstat_set_rights(fd, FILE_RIGHTS, 0));
    E("read after narrowing", __wasi_fd_read(fd, &(__wasi_iovec_t){buffer, 3}, 1, &n));
    __wasi_fd_close(fd);
    E("mkdir data/ld", __wasi_path_create_directory(ROOT, "data/ld"));
    E("symlink ld -> data/ldlink", __wasi_path_symlink("ld", ROOT, "data/ldlink"));
    E("rmdir a symlink to a dir", __wasi_path_remove_directory(ROOT, "data/ldlink"));
    E("unlink a symlink to a dir", __wasi_path_unlink_file(ROOT, "data/ldlink"));
    E("rmdir ld", __wasi_path_remove_directory(ROOT, "data/ld"));
    /* A listing read in pieces while it changes: names added after the first call. */
    __wasi_fd_t dir;
    E("mkdir data/grow", __wasi_path_create_directory(ROOT, "data/grow"));
    put("data/grow/a", "a");
    E("open data/grow", __wasi_path_open(ROOT, 1, "data/grow", __WASI_OFLAGS_DIRECTORY, DIR_RIGHTS, 0, 0, &dir));
    E("readdir the first entry", __wasi_fd_readdir(dir, buffer, sizeof(__wasi_dirent_t), 0, &n));
    __wasi_dirent_t first;
    memcpy(&first, buffer, sizeof first);
    put("data/grow/b", "b");
    int count = 1;
    __wasi_errno_t error = 0;
    for (__wasi_dircookie_t cookie = first.d_next; count < 10 && !error; count++) {
        error = __wasi_fd_readdir(dir, buffer, sizeof(__wasi_dirent_t) + 2, cookie, &n);
        if (n < sizeof(__wasi_dirent_t)) break;
        memcpy(&first, buffer, sizeof first);
        cookie = first.d_next;
    }
    printf("readdir on from its cookies: error %d, %d entries\n", error, count);
    E("readdir from the start", __wasi_fd_readdir(dir, buffer, sizeof buffer, 0, &n));
    int again = 0;
    for (__wasi_size_t at = 0; at + sizeof(__wasi_dirent_t) <= n; again++) {
        memcpy(&first, buffer + at, sizeof first);
        at += sizeof first + first.d_namlen;
    }
    printf("  %d entries now\n", again);
    __wasi_fd_close(dir);
}

/* What fd_filestat_get says of stdio, and the stat of a file the host dated before 1970 (the test's fixture). */
static void stats(void) {
    __wasi_filestat_t st;
    for (__wasi_fd_t fd = 0; fd < 3; fd++) {
        char label[64];
        snprintf(label, sizeof label, "filestat of %u", fd);
        E(label, __wasi_fd_filestat_get(fd, &st));
        printf("  type %d size %llu times zero %d\n", st.filetype, (unsigned long long)st.size, !st.atim && !st.mtim && !st.ctim);
    }
    E("path_filestat_get of a 1938 file", __wasi_path_filestat_get(ROOT, 0, "old", &st));
    printf("  size %llu mtim %llu\n", (unsigned long long)st.size, (unsigned long long)st.mtim);
    __wasi_fd_t fd = open_file("open it", "old", 0, 0);
    E("fd_filestat_get of it", __wasi_fd_filestat_get(fd, &st));
    printf("  size %llu mtim %llu\n", (unsigned long long)st.size, (unsigned long long)st.mtim);
    __wasi_fd_close(fd);
}

/* Seeking and telling at their edges: before the start, from the end, an unknown whence, offsets near 2^63, a
   directory, a descriptor without the seek and tell rights. */
static void seeking(void) {
    __wasi_filesize_t position = 99;
    __wasi_fd_t fd, limited;
    put("data/s.txt", "0123456789");
    fd = open_file("open data/s.txt", "data/s.txt", 0, 0);
    E("seek CUR -1 at the start", __wasi_fd_seek(fd, -1, __WASI_WHENCE_CUR, &position));
    printf("  position %llu\n", (unsigned long long)position);
    E("seek END -10 (the start)", __wasi_fd_seek(fd, -10, __WASI_WHENCE_END, &position));
    printf("  position %llu\n", (unsigned long long)position);
    E("seek END -11", __wasi_fd_seek(fd, -11, __WASI_WHENCE_END, &position));
    E("seek CUR +7", __wasi_fd_seek(fd, 7, __WASI_WHENCE_CUR, &position));
    E("seek CUR -3", __wasi_fd_seek(fd, -3, __WASI_WHENCE_CUR, &position));
    printf("  position %llu\n", (unsigned long long)position);
    /* 1 TiB: within every Linux file system's largest file (ext4 refuses 2^62, tmpfs takes 2^63-1) */
    E("seek SET 2^40", __wasi_fd_seek(fd, 1LL << 40, __WASI_WHENCE_SET, &position));
    printf("  position %llu\n", (unsigned long long)position);
    E("seek CUR -(2^40+1)", __wasi_fd_seek(fd, -(1LL << 40) - 1, __WASI_WHENCE_CUR, &position));
    E("tell after", __wasi_fd_tell(fd, &position));
    printf("  position %llu\n", (unsigned long long)position);
    __wasi_fd_close(fd);
    E("tell a directory", __wasi_fd_tell(ROOT, &position));
    E("seek a directory CUR 0", __wasi_fd_seek(ROOT, 0, __WASI_WHENCE_CUR, &position));
    E("tell closed", __wasi_fd_tell(99, &position));
    E("open read-only, no seek or tell", __wasi_path_open(ROOT, 1, "data/s.txt", 0, __WASI_RIGHTS_FD_READ, 0, 0, &limited));
    E("tell without the right", __wasi_fd_tell(limited, &position));
    E("seek CUR 0 without the right", __wasi_fd_seek(limited, 0, __WASI_WHENCE_CUR, &position));
    __wasi_fd_close(limited);
}

/* `.` and `..` as a path's last component, trailing slashes on a file, and paths that leave the preopen. */
static void dots(void) {
    __wasi_fd_t fd;
    __wasi_filestat_t st = {0};
    E("mkdir data/dd", __wasi_path_create_directory(ROOT, "data/dd"));
    put("data/dd/f", "f");
    E("mkdir data/dd/.", __wasi_path_create_directory(ROOT, "data/dd/."));
    E("mkdir data/dd/..", __wasi_path_create_directory(ROOT, "data/dd/.."));
    E("mkdir data/dd/new/", __wasi_path_create_directory(ROOT, "data/dd/new/"));
    E("rmdir data/dd/new/.", __wasi_path_remove_directory(ROOT, "data/dd/new/."));
    E("rmdir data/dd/new/..", __wasi_path_remove_directory(ROOT, "data/dd/new/.."));
    E("rmdir .", __wasi_path_remove_directory(ROOT, "."));
    E("rmdir data/dd/f/", __wasi_path_remove_directory(ROOT, "data/dd/f/"));
    E("unlink data/dd/.", __wasi_path_unlink_file(ROOT, "data/dd/."));
    E("unlink data/dd/..", __wasi_path_unlink_file(ROOT, "data/dd/.."));
    E("unlink data/dd/f/.", __wasi_path_unlink_file(ROOT, "data/dd/f/."));
    E("unlink data/dd/new/", __wasi_path_unlink_file(ROOT, "data/dd/new/"));
    E("rename data/dd/new/. away", __wasi_path_rename(ROOT, "data/dd/new/.", ROOT, "data/dd/x"));
    E("rename a file onto data/dd/.", __wasi_path_rename(ROOT, "data/dd/f", ROOT, "data/dd/."));
    E("rename a dir onto data/dd/new/..", __wasi_path_rename(ROOT, "data/dd/new", ROOT, "data/dd/new/.."));
    E("rename data/dd/f/ away", __wasi_path_rename(ROOT, "data/dd/f/", ROOT, "data/dd/g"));
    E("mkdir data/dd/to", __wasi_path_create_directory(ROOT, "data/dd/to"));
    E("mkdir data/dd/em", __wasi_path_create_directory(ROOT, "data/dd/em"));
    E("symlink data/dd/ln to it", __wasi_path_symlink("to", ROOT, "data/dd/ln"));
    E("rmdir data/dd/ln/", __wasi_path_remove_directory(ROOT, "data/dd/ln/"));
    E("rename data/dd/ln/ away", __wasi_path_rename(ROOT, "data/dd/ln/", ROOT, "data/dd/x"));
    E("rename a dir onto data/dd/ln/", __wasi_path_rename(ROOT, "data/dd/em", ROOT, "data/dd/ln/"));
    E("unlink data/dd/ln/", __wasi_path_unlink_file(ROOT, "data/dd/ln/"));
    E("stat data/dd/to, still there", __wasi_path_filestat_get(ROOT, 0, "data/dd/to", &st));
    E("symlink data/dd/dg to nothing", __wasi_path_symlink("gone", ROOT, "data/dd/dg"));
    E("mkdir data/dd/dg/", __wasi_path_create_directory(ROOT, "data/dd/dg/"));
    E("symlink data/dd/lp to itself", __wasi_path_symlink("lp", ROOT, "data/dd/lp"));
    E("symlink data/dd/out out", __wasi_path_symlink("../../..", ROOT, "data/dd/out"));
    E("mkdir data/dd/lp/", __wasi_path_create_directory(ROOT, "data/dd/lp/"));
    E("mkdir data/dd/out/", __wasi_path_create_directory(ROOT, "data/dd/out/"));
    E("rename data/dd/lp/ away", __wasi_path_rename(ROOT, "data/dd/lp/", ROOT, "data/dd/x"));
    E("rename data/dd/out/ away", __wasi_path_rename(ROOT, "data/dd/out/", ROOT, "data/dd/x"));
    E("symlink data/dd/lf to a file", __wasi_path_symlink("f", ROOT, "data/dd/lf"));
    E("mkdir data/dd/lf/", __wasi_path_create_directory(ROOT, "data/dd/lf/"));
    E("rename data/dd/lf/ away", __wasi_path_rename(ROOT, "data/dd/lf/", ROOT, "data/dd/x"));
    E("rename a dir onto data/dd/lf/", __wasi_path_rename(ROOT, "data/dd/em", ROOT, "data/dd/lf/"));
    open_file("CREAT data/dd/lf/", "data/dd/lf/", __WASI_OFLAGS_CREAT, 0);
    /* `link/` names the link itself to unlink(2), rmdir(2), symlink(2) and link(2), wherever it points */
    for (const char **name = (const char *[]){"data/dd/lf/", "data/dd/dg/", "data/dd/lp/", "data/dd/out/", 0}; *name;
         name++) {
        char label[44];
        snprintf(label, sizeof label, "unlink %s", *name);
        E(label, __wasi_path_unlink_file(ROOT, *name));
        snprintf(label, sizeof label, "rmdir %s", *name);
        E(label, __wasi_path_remove_directory(ROOT, *name));
    }
    for (const char **name = (const char *[]){"data/dd/lf/", "data/dd/dg/", "data/dd/lp/", "data/dd/out/",
                                              "data/dd/ln/", "data/dd/f/", 0};
         *name; name++) {
        char label[44];
        snprintf(label, sizeof label, "symlink onto %s", *name);
        E(label, __wasi_path_symlink("f", ROOT, *name));
        snprintf(label, sizeof label, "link onto %s", *name);
        E(label, __wasi_path_link(ROOT, 0, "data/dd/f", ROOT, *name));
    }
    open_file("CREAT data/dd/out/", "data/dd/out/", __WASI_OFLAGS_CREAT, 0);
    E("rename missing onto data/dd/ln/", __wasi_path_rename(ROOT, "data/dd/missing", ROOT, "data/dd/ln/"));
    E("link missing onto data/dd/to/", __wasi_path_link(ROOT, 0, "data/dd/missing", ROOT, "data/dd/to/"));
    E("link data/dd/f onto data/dd/.", __wasi_path_link(ROOT, 0, "data/dd/f", ROOT, "data/dd/."));
    E("link data/dd/f/ away", __wasi_path_link(ROOT, 0, "data/dd/f/", ROOT, "data/dd/g"));
    E("symlink onto data/dd/..", __wasi_path_symlink("f", ROOT, "data/dd/.."));
    E("set_times data/dd/f/", __wasi_path_filestat_set_times(ROOT, 0, "data/dd/f/", 0, 0, __WASI_FSTFLAGS_MTIM_NOW));
    E("filestat data/dd/..", __wasi_path_filestat_get(ROOT, 0, "data/dd/..", &st));
    printf("  type %d\n", st.filetype);
    E("open data/dd/..", __wasi_path_open(ROOT, 0, "data/dd/..", __WASI_OFLAGS_DIRECTORY, DIR_RIGHTS, 0, 0, &fd));
    if (fd != (__wasi_fd_t)-1) __wasi_fd_close(fd);
    open_file("open data/dd/f/..", "data/dd/f/..", 0, 0);
    open_file("open data/dd/f/.", "data/dd/f/.", 0, 0);
    open_file("CREAT data/dd/.", "data/dd/.", __WASI_OFLAGS_CREAT, 0);
    open_file("CREAT|EXCL data/dd/..", "data/dd/..", __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, 0);
    open_file("open ..", "..", 0, 0);
    open_file("open data/../..", "data/../..", 0, 0);
    open_file("open data/../../data", "data/../../data", 0, 0);
    open_file("open /data", "/data", 0, 0);
    E("symlink to an absolute path", __wasi_path_symlink("/data/dd/f", ROOT, "data/dd/abs"));
    open_file("open it, following", "data/dd/abs", 0, 0);
    E("stat it, not following", __wasi_path_filestat_get(ROOT, 0, "data/dd/abs", &st));
    E("symlink up and out", __wasi_path_symlink("../../..", ROOT, "data/dd/up"));
    E("stat up and out, following", __wasi_path_filestat_get(ROOT, 1, "data/dd/up", &st));
    E("symlink up and back in", __wasi_path_symlink("../dd/f", ROOT, "data/dd/back"));
    E("stat up and back in, following", __wasi_path_filestat_get(ROOT, 1, "data/dd/back", &st));
    printf("  type %d size %llu\n", st.filetype, (unsigned long long)st.size);
}

/* A listing read whole against the same listing read on from each entry's d_next: each cookie must go on with the
   next entry, and a name's d_ino must be its file's. */
static void cookies(void) {
    static uint8_t whole[4096], part[4096];
    __wasi_size_t used = 0, again = 0;
    __wasi_fd_t dir;
    __wasi_dirent_t entry, next;
    E("mkdir data/ck", __wasi_path_create_directory(ROOT, "data/ck"));
    const char *files[] = {"data/ck/one", "data/ck/two", "data/ck/three", "data/ck/four", "data/ck/a-longer-name"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) put(files[i], files[i]);
    E("open data/ck", __wasi_path_open(ROOT, 1, "data/ck", __WASI_OFLAGS_DIRECTORY, DIR_RIGHTS, 0, 0, &dir));
    E("readdir whole", __wasi_fd_readdir(dir, whole, sizeof whole, 0, &used));
    int entries = 0, follows = 0, inodes = 0;
    for (__wasi_size_t at = 0; at + sizeof entry <= used; at += sizeof entry + entry.d_namlen, entries++) {
        memcpy(&entry, whole + at, sizeof entry);
        __wasi_size_t after = at + sizeof entry + entry.d_namlen;
        __wasi_errno_t error = __wasi_fd_readdir(dir, part, sizeof part, entry.d_next, &again);
        if (after + sizeof next <= used) {
            memcpy(&next, whole + after, sizeof next);
            follows += !error && again == used - after && !memcmp(part, whole + after, again);
        } else {
            follows += !error && again == 0;
        }
        char path[64] = "data/ck/";
        memcpy(path + 8, whole + at + sizeof entry, entry.d_namlen < 55 ? entry.d_namlen : 55);
        __wasi_filestat_t st;
        if (!__wasi_path_filestat_get(ROOT, 0, path, &st)) inodes += st.ino == entry.d_ino;
    }
    printf("  %d entries, %d go on from their d_next, %d with their file's inode\n", entries, follows, inodes);
    E("readdir whole again", __wasi_fd_readdir(dir, part, sizeof part, 0, &again));
    printf("  the same bytes %d\n", again == used && !memcmp(part, whole, used));
    E("readdir without the right", __wasi_fd_readdir(ROOT, part, sizeof part, 0, &again));
    __wasi_fd_t limited;
    E("open data/ck without readdir", __wasi_path_open(ROOT, 1, "data/ck", __WASI_OFLAGS_DIRECTORY, __WASI_RIGHTS_PATH_OPEN, 0, 0, &limited));
    E("readdir it", __wasi_fd_readdir(limited, part, sizeof part, 0, &again));
    __wasi_fd_close(limited);
    __wasi_fd_close(dir);
    /* The preopen's own '..' names the host directory above the sandbox: it must show the preopen again. */
    E("open the preopen's '.'", __wasi_path_open(ROOT, 1, ".", __WASI_OFLAGS_DIRECTORY, DIR_RIGHTS, 0, 0, &dir));
    E("readdir it whole", __wasi_fd_readdir(dir, whole, sizeof whole, 0, &used));
    memcpy(&entry, whole, sizeof entry);
    memcpy(&next, whole + sizeof entry + entry.d_namlen, sizeof next);
    printf("  '%.*s' and '..' share an inode %d\n", (int)entry.d_namlen, whole + sizeof entry, entry.d_ino == next.d_ino);
    __wasi_fd_close(dir);
}

/* Rights: what fdstat reports, narrowing, what a directory's inheriting rights allow below it. */
static void rights(void) {
    __wasi_fdstat_t fs;
    __wasi_fd_t fd, dir, below;
    __wasi_size_t n;
    put("data/rt", "rights");
    E("open data/rt read only", __wasi_path_open(ROOT, 1, "data/rt", 0, __WASI_RIGHTS_FD_READ, 0, 0, &fd));
    E("fdstat", __wasi_fd_fdstat_get(fd, &fs));
    printf("  base has write %d, has read %d\n", !!(fs.fs_rights_base & __WASI_RIGHTS_FD_WRITE), !!(fs.fs_rights_base & __WASI_RIGHTS_FD_READ));
    E("write it", __wasi_fd_write(fd, &(__wasi_ciovec_t){(const uint8_t *)"x", 1}, 1, &n));
    E("set_size it", __wasi_fd_filestat_set_size(fd, 0));
    E("set APPEND on it", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_APPEND));
    __wasi_fd_close(fd);
    E("open data with no inheriting rights", __wasi_path_open(ROOT, 1, "data", __WASI_OFLAGS_DIRECTORY, DIR_RIGHTS, 0, 0, &dir));
    E("open below it for reading", __wasi_path_open(dir, 1, "rt", 0, __WASI_RIGHTS_FD_READ, 0, 0, &below));
    E("mkdir below it", __wasi_path_create_directory(dir, "rtd"));
    E("unlink below it", __wasi_path_unlink_file(dir, "rt"));
    __wasi_fd_close(dir);
    (void)__wasi_path_unlink_file(ROOT, "data/rt"); /* the reference, ignoring rights, did both */
    (void)__wasi_path_remove_directory(ROOT, "data/rtd");
    put("data/rt2", "file");
    E("open data/rt2 as a dir fd", __wasi_path_open(ROOT, 1, "data/rt2", 0, FILE_RIGHTS, 0, 0, &fd));
    E("open under a file fd", __wasi_path_open(fd, 1, "x", 0, FILE_RIGHTS, 0, 0, &below));
    E("mkdir under a file fd", __wasi_path_create_directory(fd, "x"));
    E("sock_shutdown a file", __wasi_sock_shutdown(fd, __WASI_SDFLAGS_RD));
    SOCKET_CALL("sock_recv a file", __wasi_sock_recv(fd, &(__wasi_iovec_t){(uint8_t *)&n, 1}, 1, 0, &n, &(__wasi_roflags_t){0}));
    SOCKET_CALL("sock_send a directory", __wasi_sock_send(ROOT, &(__wasi_ciovec_t){(const uint8_t *)"x", 1}, 1, 0, &n));
    E("sock_shutdown stdout", __wasi_sock_shutdown(1, __WASI_SDFLAGS_RD));
    SOCKET_CALL("sock_accept stdout", __wasi_sock_accept(1, 0, &below));
    __wasi_fd_close(fd);
}

/* What is left of a directory and a file removed while open, and a preopen moved to another number and back. */
static void gone(void) {
    static uint8_t buffer[1024];
    __wasi_size_t used = 99, n = 0;
    __wasi_filestat_t st;
    __wasi_fd_t dir, fd, moved;
    E("mkdir data/gone", __wasi_path_create_directory(ROOT, "data/gone"));
    E("open data/gone", __wasi_path_open(ROOT, 1, "data/gone", __WASI_OFLAGS_DIRECTORY, DIR_RIGHTS | __WASI_RIGHTS_PATH_CREATE_DIRECTORY | __WASI_RIGHTS_PATH_CREATE_FILE, FILE_RIGHTS, 0, &dir));
    E("rmdir it while open", __wasi_path_remove_directory(ROOT, "data/gone"));
    E("readdir it", __wasi_fd_readdir(dir, buffer, sizeof buffer, 0, &used));
    int names = 0;
    for (__wasi_size_t at = 0; at + sizeof(__wasi_dirent_t) <= used; names++) {
        __wasi_dirent_t entry;
        memcpy(&entry, buffer + at, sizeof entry);
        at += sizeof entry + entry.d_namlen;
    }
    printf("  %d names\n", names);
    E("filestat it", __wasi_fd_filestat_get(dir, &st));
    printf("  type %d nlink %llu\n", st.filetype, (unsigned long long)st.nlink);
    E("mkdir in it", __wasi_path_create_directory(dir, "x"));
    E("create in it", __wasi_path_open(dir, 0, "f", __WASI_OFLAGS_CREAT, FILE_RIGHTS, 0, 0, &fd));
    E("open . in it", __wasi_path_open(dir, 0, ".", 0, DIR_RIGHTS, 0, 0, &fd));
    __wasi_fd_close(dir);
    put("data/unlinked", "still here");
    fd = open_file("open data/unlinked", "data/unlinked", 0, 0);
    E("unlink it while open", __wasi_path_unlink_file(ROOT, "data/unlinked"));
    E("write to it", __wasi_fd_write(fd, &(__wasi_ciovec_t){(const uint8_t *)"!", 1}, 1, &n));
    E("filestat it", __wasi_fd_filestat_get(fd, &st));
    printf("  nlink %llu size %llu\n", (unsigned long long)st.nlink, (unsigned long long)st.size);
    E("pread it", __wasi_fd_pread(fd, &(__wasi_iovec_t){buffer, 5}, 1, 0, &n));
    printf("  %u bytes %.5s\n", n, buffer);
    __wasi_fd_close(fd);
    E("rename a name over its own hard link", __wasi_path_rename(ROOT, "data/src", ROOT, "data/hard"));
    E("close stdin", __wasi_fd_close(0));
    fd = open_file("open data/hard", "data/hard", 0, 0);
    printf("  at 0 %d\n", fd == 0);
    __wasi_fd_close(fd);
    E("renumber the preopen to 60", __wasi_fd_renumber(ROOT, 60));
    E("prestat_get of 60", __wasi_fd_prestat_get(60, &(__wasi_prestat_t){0}));
    E("prestat_get of the old number", __wasi_fd_prestat_get(ROOT, &(__wasi_prestat_t){0}));
    E("open data through 60", __wasi_path_open(60, 0, "data", __WASI_OFLAGS_DIRECTORY, DIR_RIGHTS, 0, 0, &moved));
    __wasi_fd_close(moved);
    E("renumber it back", __wasi_fd_renumber(60, ROOT));
    E("prestat_get of 60 now", __wasi_fd_prestat_get(60, &(__wasi_prestat_t){0}));
    E("set_times to 2^64-1", __wasi_path_filestat_set_times(ROOT, 0, "data/s.txt", ~0ULL, ~0ULL, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM));
    E("fd set_times to 2^63", __wasi_fd_filestat_set_times(ROOT, 1ULL << 63, 1ULL << 63, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM));
    E("filestat it", __wasi_path_filestat_get(ROOT, 0, "data/s.txt", &st));
    printf("  mtim past 2400 %d\n", st.mtim > 13569465600ULL * 1000000000ULL);
}

/* What Wasmtime's own preview 1 test programs (crates/test-programs, p1_*) expect where wasi-testsuite does not look:
   rights beyond reading and writing narrow nothing, a descriptor not open for a way is BADF, a directory is neither
   read, written, seeked, synced nor given flags, stdio stats as zeros, fd_allocate is NOTSUP. */
static void wasmtime_programs(void) {
    char buffer[8];
    __wasi_size_t n = 99;
    __wasi_filestat_t st;
    __wasi_fdstat_t fs;
    __wasi_filesize_t position = 99;
    __wasi_fd_t reader, writer, dir, fd;
    int zeros = 0;
    for (__wasi_fd_t stdio = 0; stdio < 3; stdio++)
        zeros += !__wasi_fd_filestat_get(stdio, &st) && !st.size && !st.atim && !st.mtim && !st.ctim;
    printf("stdio filestats all zero %d, isatty %d %d %d\n", zeros, isatty(0), isatty(1), isatty(2));
    put("data/wp", "0123456789");
    E("open it with FD_READ alone", __wasi_path_open(ROOT, 0, "data/wp", 0, __WASI_RIGHTS_FD_READ, 0, 0, &reader));
    E("  seek", __wasi_fd_seek(reader, 2, __WASI_WHENCE_SET, &position));
    E("  tell", __wasi_fd_tell(reader, &position));
    E("  filestat", __wasi_fd_filestat_get(reader, &st));
    E("  pread", __wasi_fd_pread(reader, &(__wasi_iovec_t){(uint8_t *)buffer, 4}, 1, 0, &n));
    E("  advise", __wasi_fd_advise(reader, 0, 0, __WASI_ADVICE_NORMAL));
    E("  sync", __wasi_fd_sync(reader));
    E("  write nothing", __wasi_fd_write(reader, &(__wasi_ciovec_t){(const uint8_t *)buffer, 0}, 1, &n));
    E("  set_size", __wasi_fd_filestat_set_size(reader, 100));
    E("  allocate", __wasi_fd_allocate(reader, 0, 100));
    printf("  isatty %d\n", isatty(reader));
    E("  fdstat", __wasi_fd_fdstat_get(reader, &fs));
    printf("  read %d write %d readdir %d\n", !!(fs.fs_rights_base & __WASI_RIGHTS_FD_READ),
           !!(fs.fs_rights_base & __WASI_RIGHTS_FD_WRITE), !!(fs.fs_rights_base & __WASI_RIGHTS_FD_READDIR));
    E("open it with FD_WRITE alone", __wasi_path_open(ROOT, 0, "data/wp", 0, __WASI_RIGHTS_FD_WRITE, 0, __WASI_FDFLAGS_NONBLOCK, &writer));
    E("  fdstat", __wasi_fd_fdstat_get(writer, &fs));
    printf("  read %d write %d readdir %d\n", !!(fs.fs_rights_base & __WASI_RIGHTS_FD_READ),
           !!(fs.fs_rights_base & __WASI_RIGHTS_FD_WRITE), !!(fs.fs_rights_base & __WASI_RIGHTS_FD_READDIR));
    E("  seek 50", __wasi_fd_seek(writer, 50, __WASI_WHENCE_SET, &position));
    E("  write 0 bytes there", __wasi_fd_write(writer, &(__wasi_ciovec_t){(const uint8_t *)buffer, 0}, 1, &n));
    E("  filestat", __wasi_fd_filestat_get(writer, &st));
    printf("  size %llu\n", (unsigned long long)st.size);
    E("  write 1 byte there", __wasi_fd_write(writer, &(__wasi_ciovec_t){(const uint8_t *)"!", 1}, 1, &n));
    E("  tell", __wasi_fd_tell(writer, &position));
    printf("  position %llu\n", (unsigned long long)position);
    E("  pwrite", __wasi_fd_pwrite(writer, &(__wasi_ciovec_t){(const uint8_t *)"P", 1}, 1, 0, &n));
    E("  pwrite 0 bytes at 80", __wasi_fd_pwrite(writer, &(__wasi_ciovec_t){(const uint8_t *)"P", 0}, 1, 80, &n));
    E("  filestat", __wasi_fd_filestat_get(writer, &st));
    printf("  size %llu\n", (unsigned long long)st.size);
    E("  read", __wasi_fd_read(writer, &(__wasi_iovec_t){(uint8_t *)buffer, 4}, 1, &n));
    __wasi_subscription_t s[2] = {on_fd(40, __WASI_EVENTTYPE_FD_READ, reader)};
    poll("poll the reader for reading", s, 1, 0);
    s[0] = on_fd(41, __WASI_EVENTTYPE_FD_WRITE, writer);
    poll("poll the writer for writing", s, 1, 0);
    s[0] = on_fd(42, __WASI_EVENTTYPE_FD_WRITE, reader);
    poll("poll the reader for writing", s, 1, 0);
    s[0] = on_fd(43, __WASI_EVENTTYPE_FD_READ, 0xffffffff);
    s[1] = on_fd(44, __WASI_EVENTTYPE_FD_WRITE, 0xffffffff);
    poll("poll descriptor 2^32-1 both ways", s, 2, 0);
    s[0] = clock_at(45, 99, 0, 0);
    poll("poll an undefined clock", s, 1, 0);
    __wasi_fd_close(reader);
    __wasi_fd_close(writer);
    E("mkdir data/wpd", __wasi_path_create_directory(ROOT, "data/wpd"));
    E("open it with no rights", __wasi_path_open(ROOT, 0, "data/wpd", __WASI_OFLAGS_DIRECTORY, 0, 0, 0, &dir));
    E("  filestat", __wasi_fd_filestat_get(dir, &st));
    printf("  type %d\n", st.filetype);
    E("  read", __wasi_fd_read(dir, &(__wasi_iovec_t){(uint8_t *)buffer, 4}, 1, &n));
    E("  pread", __wasi_fd_pread(dir, &(__wasi_iovec_t){(uint8_t *)buffer, 4}, 1, 0, &n));
    E("  write", __wasi_fd_write(dir, &(__wasi_ciovec_t){(const uint8_t *)"x", 1}, 1, &n));
    E("  pwrite", __wasi_fd_pwrite(dir, &(__wasi_ciovec_t){(const uint8_t *)"x", 1}, 1, 0, &n));
    for (__wasi_whence_t whence = 0; whence < 3; whence++) E("  seek", __wasi_fd_seek(dir, 0, whence, &position));
    E("  tell", __wasi_fd_tell(dir, &position));
    E("  advise", __wasi_fd_advise(dir, 0, 0, __WASI_ADVICE_DONTNEED));
    E("  allocate", __wasi_fd_allocate(dir, 0, 0));
    E("  datasync", __wasi_fd_datasync(dir));
    E("  sync", __wasi_fd_sync(dir));
    E("  set NONBLOCK", __wasi_fd_fdstat_set_flags(dir, __WASI_FDFLAGS_NONBLOCK));
    E("  set_size", __wasi_fd_filestat_set_size(dir, 0));
    E("  readdir", __wasi_fd_readdir(dir, (uint8_t *)buffer, sizeof buffer, 0, &n));
    E("  create a file in it", __wasi_path_open(dir, 0, "f", __WASI_OFLAGS_CREAT, 0, 0, 0, &fd));
    E("  close it", __wasi_fd_close(fd));
    E("  readdir from past its end", __wasi_fd_readdir(dir, (uint8_t *)buffer, sizeof buffer, 4, &n));
    printf("  used %u\n", n);
    E("  readdir into 0 bytes", __wasi_fd_readdir(dir, (uint8_t *)buffer, 0, 0, &n));
    printf("  used %u\n", n);
    E("  prestat_dir_name", __wasi_fd_prestat_dir_name(dir, (uint8_t *)buffer, sizeof buffer));
    __wasi_fd_close(dir);
    E("prestat_dir_name into 0 bytes", __wasi_fd_prestat_dir_name(ROOT, (uint8_t *)buffer, 0));
    E("prestat_dir_name into more", __wasi_fd_prestat_dir_name(ROOT, (uint8_t *)buffer, sizeof buffer));
    E("renumber stdout to 101", __wasi_fd_renumber(1, 101));
    E("renumber the preopen to 2^32-1", __wasi_fd_renumber(ROOT, 0xffffffff));
    E("create data/wpc with FD_READ alone", __wasi_path_open(ROOT, 0, "data/wpc", __WASI_OFLAGS_CREAT, __WASI_RIGHTS_FD_READ, 0, 0, &fd));
    E("  write nothing to it", __wasi_fd_write(fd, &(__wasi_ciovec_t){(const uint8_t *)"", 0}, 1, &n));
    __wasi_fd_close(fd);
    E("open data/wp with APPEND and CREAT", __wasi_path_open(ROOT, 0, "data/wp", __WASI_OFLAGS_CREAT, __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_WRITE, 0, __WASI_FDFLAGS_APPEND, &fd));
    E("  fdstat", __wasi_fd_fdstat_get(fd, &fs));
    printf("  flags %d\n", fs.fs_flags);
    E("  write", __wasi_fd_write(fd, &(__wasi_ciovec_t){(const uint8_t *)"A", 1}, 1, &n));
    __wasi_fd_close(fd);
    show("data/wp");
    E("rmdir a file", __wasi_path_remove_directory(ROOT, "data/wp"));
    E("rmdir a file/", __wasi_path_remove_directory(ROOT, "data/wp/"));
}

/* Last: what becomes of the preopen when a program closes it or renumbers a file over it. */
static void preopen_replaced(void) {
    put("data/last", "last");
    __wasi_fd_t fd = open_file("open data/last", "data/last", 0, 0), again;
    E("renumber a file over the preopen", __wasi_fd_renumber(fd, ROOT));
    E("path_open under it", __wasi_path_open(ROOT, 0, "data", 0, 0, 0, 0, &again));
    E("prestat_get of it", __wasi_fd_prestat_get(ROOT, &(__wasi_prestat_t){0}));
    E("close it", __wasi_fd_close(ROOT));
    E("close it again", __wasi_fd_close(ROOT));
}

/* What wasi-libc's fcntl(F_GETFL) makes of each descriptor's rights and flags: the access mode a program sees. */
static void access_modes(void) {
    put("data/modes", "m");
    const struct { const char *label; int flags; } opens[] = {
        {"O_RDONLY", O_RDONLY}, {"O_WRONLY", O_WRONLY}, {"O_RDWR", O_RDWR},
        {"O_WRONLY|O_APPEND", O_WRONLY | O_APPEND}, {"O_RDONLY|O_NONBLOCK", O_RDONLY | O_NONBLOCK},
    };
    for (size_t i = 0; i < sizeof opens / sizeof *opens; i++) {
        int fd = open("data/modes", opens[i].flags);
        int got = fcntl(fd, F_GETFL);
        printf("F_GETFL of %-24s accmode %d append %d nonblock %d\n", opens[i].label, got & O_ACCMODE,
               !!(got & O_APPEND), !!(got & O_NONBLOCK));
        close(fd);
    }
    int dir = open("data", O_RDONLY | O_DIRECTORY);
    printf("F_GETFL of a directory accmode %d\n", fcntl(dir, F_GETFL) & O_ACCMODE);
    close(dir);
    for (int fd = 0; fd < 3; fd++) printf("F_GETFL of %d accmode %d\n", fd, fcntl(fd, F_GETFL) & O_ACCMODE);
}

/* Names at their limits and in odd spellings, symlink loops, and vectored I/O at IOV_MAX. */
static void names(void) {
    static char name[6000];
    static __wasi_ciovec_t out[1100];
    __wasi_fd_t fd;
    __wasi_size_t n = 0;
    E("mkdir data/n", __wasi_path_create_directory(ROOT, "data/n"));
    memset(name, 0, sizeof name);
    memcpy(name, "data/n/", 7);
    memset(name + 7, 'x', 255);
    E("create a 255-byte name", __wasi_path_open(ROOT, 0, name, __WASI_OFLAGS_CREAT, FILE_RIGHTS, 0, 0, &fd));
    __wasi_fd_close(fd);
    memset(name + 7, 'x', 256);
    E("create a 256-byte name", __wasi_path_open(ROOT, 0, name, __WASI_OFLAGS_CREAT, FILE_RIGHTS, 0, 0, &fd));
    memset(name, 0, sizeof name);
    for (int i = 0; i < 2100; i++) memcpy(name + 2 * i, "./", 2);
    memcpy(name + 4200, "data", 4);
    E("a 4204-byte path of ./", __wasi_path_filestat_get(ROOT, 0, name, &(__wasi_filestat_t){0}));
    memset(name, 0, sizeof name);
    for (int i = 0; i < 1900; i++) memcpy(name + 2 * i, "./", 2);
    memcpy(name + 3800, "data", 4);
    E("a 3804-byte path of ./", __wasi_path_filestat_get(ROOT, 0, name, &(__wasi_filestat_t){0}));
    put("data/n/f", "f");
    E("data//n///f", __wasi_path_filestat_get(ROOT, 0, "data//n///f", &(__wasi_filestat_t){0}));
    E("./data/./n/./f", __wasi_path_filestat_get(ROOT, 0, "./data/./n/./f", &(__wasi_filestat_t){0}));
    E("data/n/../n/f", __wasi_path_filestat_get(ROOT, 0, "data/n/../n/f", &(__wasi_filestat_t){0}));
    E("data/n/f/.", __wasi_path_filestat_get(ROOT, 0, "data/n/f/.", &(__wasi_filestat_t){0}));
    E("data/n/f/..", __wasi_path_filestat_get(ROOT, 0, "data/n/f/..", &(__wasi_filestat_t){0}));
    E("symlink loop a -> b", __wasi_path_symlink("b", ROOT, "data/n/a"));
    E("symlink loop b -> a", __wasi_path_symlink("a", ROOT, "data/n/b"));
    E("stat a loop, following", __wasi_path_filestat_get(ROOT, 1, "data/n/a", &(__wasi_filestat_t){0}));
    E("stat a loop, not following", __wasi_path_filestat_get(ROOT, 0, "data/n/a", &(__wasi_filestat_t){0}));
    E("open a loop, following", __wasi_path_open(ROOT, 1, "data/n/a", 0, FILE_RIGHTS, 0, 0, &fd));
    E("open under a loop", __wasi_path_open(ROOT, 0, "data/n/a/x", 0, FILE_RIGHTS, 0, 0, &fd));
    E("create through a loop", __wasi_path_open(ROOT, 1, "data/n/a", __WASI_OFLAGS_CREAT, FILE_RIGHTS, 0, 0, &fd));
    E("symlink self", __wasi_path_symlink("self", ROOT, "data/n/self"));
    E("open self, following", __wasi_path_open(ROOT, 1, "data/n/self", 0, FILE_RIGHTS, 0, 0, &fd));
    fd = open_file("open data/n/v", "data/n/v", __WASI_OFLAGS_CREAT, 0);
    for (int i = 0; i < 1100; i++) out[i] = (__wasi_ciovec_t){(const uint8_t *)"ab", 2};
    E("write 1024 iovecs", __wasi_fd_write(fd, out, 1024, &n));
    printf("  wrote %u of their 2048 bytes\n", n);
    E("write 1025 iovecs", __wasi_fd_write(fd, out, 1025, &n));
    E("write 0-byte iovecs", __wasi_fd_write(fd, (__wasi_ciovec_t[]){{(const uint8_t *)"", 0}, {(const uint8_t *)"", 0}}, 2, &n));
    printf("  wrote %u\n", n);
    __wasi_fd_close(fd);
    (void)__wasi_path_unlink_file(ROOT, "data/n/v"); /* whose size the first write decided (the test's KNOWN) */
}

int main(void) {
    E("mkdir data/edges", __wasi_path_create_directory(ROOT, "data/edges"));
    polling();
    flags();
    renumbering();
    positional();
    times();
    links();
    renames();
    opening();
    reading_directories();
    command_line();
    the_rest();
    descriptors();
    access_modes();
    names();
    stats();
    seeking();
    dots();
    wasmtime_programs();
    cookies();
    rights();
    gone();
    preopen_replaced();
    return 0;
}
