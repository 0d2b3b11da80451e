/* Several preopens at once: two read-write (/a, /b), one read-only (/r) and a read-write one inside it (/r/w).
   Renames and links between them, each change a read-only preopen refuses, what a file opened under it may do,
   symlinks that leave one preopen for another, names too long, and each preopen's prestat and rights. */
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

#define E(label, call) printf("%-44s %d\n", label, (int)(call))
#define A 3
#define B 4
#define R 5
#define W 6
#define RW (__WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_WRITE)

static __wasi_fd_t opened(const char *label, __wasi_fd_t dir, const char *path, __wasi_oflags_t oflags,
                          __wasi_rights_t rights, __wasi_fdflags_t fdflags) {
    __wasi_fd_t fd = 0;
    __wasi_errno_t error = __wasi_path_open(dir, 1, path, oflags, rights, rights, fdflags, &fd);
    printf("%-44s %d\n", label, error);
    return error ? (__wasi_fd_t)-1 : fd;
}

static void put(__wasi_fd_t dir, const char *path, const char *text) {
    __wasi_fd_t fd = 0;
    __wasi_size_t n = 0;
    __wasi_errno_t error = __wasi_path_open(dir, 0, path, __WASI_OFLAGS_CREAT | __WASI_OFLAGS_TRUNC, RW, 0, 0, &fd);
    if (!error) error = __wasi_fd_write(fd, &(__wasi_ciovec_t){(const uint8_t *)text, strlen(text)}, 1, &n);
    if (!error) __wasi_fd_close(fd);
    printf("put %-40s %d\n", path, error);
}

static void show(__wasi_fd_t dir, const char *path) {
    char buffer[64] = {0};
    __wasi_size_t n = 0;
    __wasi_fd_t fd = 0;
    __wasi_errno_t error = __wasi_path_open(dir, 1, path, 0, __WASI_RIGHTS_FD_READ, 0, 0, &fd);
    if (!error) error = __wasi_fd_read(fd, &(__wasi_iovec_t){(uint8_t *)buffer, sizeof buffer - 1}, 1, &n);
    if (!error) __wasi_fd_close(fd);
    printf("  %d:%s: error %d: %s\n", dir, path, error, buffer);
}

static void prestats(void) {
    for (__wasi_fd_t fd = 3; fd < 9; fd++) {
        __wasi_prestat_t prestat;
        char name[32] = {0};
        __wasi_errno_t error = __wasi_fd_prestat_get(fd, &prestat);
        if (!error) error = __wasi_fd_prestat_dir_name(fd, (uint8_t *)name, prestat.u.dir.pr_name_len);
        printf("prestat %d: %d %s\n", fd, error, name);
    }
}

static void fdstat(const char *label, __wasi_fd_t fd) {
    __wasi_fdstat_t st = {0};
    __wasi_errno_t error = __wasi_fd_fdstat_get(fd, &st);
    printf("%-44s %d type %d flags %d read %d write %d\n", label, error, st.fs_filetype, st.fs_flags,
           !!(st.fs_rights_base & __WASI_RIGHTS_FD_READ), !!(st.fs_rights_base & __WASI_RIGHTS_FD_WRITE));
}

static void across(void) {
    put(A, "x", "from a");
    put(A, "y", "linked");
    E("rename a/x -> b/x", __wasi_path_rename(A, "x", B, "x"));
    show(B, "x");
    E("rename b/x -> a/x2", __wasi_path_rename(B, "x", A, "x2"));
    E("link a/y -> b/y", __wasi_path_link(A, 0, "y", B, "y"));
    show(B, "y");
    E("rename a/x2 -> r/x", __wasi_path_rename(A, "x2", R, "x"));
    E("rename r/f -> a/f", __wasi_path_rename(R, "f", A, "f"));
    E("link r/f -> a/f", __wasi_path_link(R, 0, "f", A, "f"));
    E("link a/y -> r/y", __wasi_path_link(A, 0, "y", R, "y"));
    E("rename a/x2 -> w/x", __wasi_path_rename(A, "x2", W, "x"));
    show(W, "x");
    E("rename w/x -> a/x3", __wasi_path_rename(W, "x", A, "x3"));
    E("rename r/w/x through r", __wasi_path_rename(R, "w/x", A, "x4"));
    E("mkdir a/d", __wasi_path_create_directory(A, "d"));
    E("rename a/d -> b/d", __wasi_path_rename(A, "d", B, "d"));
    E("rename b/d -> b/d/e (under itself)", __wasi_path_rename(B, "d", B, "d/e"));
    E("rename a/missing -> b/m", __wasi_path_rename(A, "missing", B, "m"));
    E("rename to a closed fd", __wasi_path_rename(A, "x3", 40, "x"));
    E("rename to a file fd", __wasi_path_rename(A, "x3", 1, "x"));
}

static void read_only(void) {
    E("r: open f to write", opened("  ", R, "f", 0, RW, 0) == (__wasi_fd_t)-1);
    E("r: open f TRUNC", opened("  ", R, "f", __WASI_OFLAGS_TRUNC, __WASI_RIGHTS_FD_READ, 0) == (__wasi_fd_t)-1);
    E("r: open f APPEND", opened("  ", R, "f", 0, __WASI_RIGHTS_FD_READ, __WASI_FDFLAGS_APPEND) == (__wasi_fd_t)-1);
    for (int i = 0; i < 4; i++) {
        static const char *labels[] = {"r: open f read|APPEND", "r: open f read|FD_ALLOCATE", "r: open f read|SET_SIZE",
                                       "r: open f read|DATASYNC"};
        static const __wasi_rights_t extra[] = {0, __WASI_RIGHTS_FD_ALLOCATE, __WASI_RIGHTS_FD_FILESTAT_SET_SIZE,
                                                __WASI_RIGHTS_FD_DATASYNC};
        __wasi_fd_t fd = opened(labels[i], R, "f", 0, __WASI_RIGHTS_FD_READ | extra[i], i ? 0 : __WASI_FDFLAGS_APPEND);
        if (fd == (__wasi_fd_t)-1) continue;
        fdstat("  fdstat", fd);
        E("  write", __wasi_fd_write(fd, &(__wasi_ciovec_t){(const uint8_t *)"z", 1}, 1, &(__wasi_size_t){0}));
        E("  set size", __wasi_fd_filestat_set_size(fd, 0));
        E("  close", __wasi_fd_close(fd));
    }
    E("r: CREAT new", opened("  ", R, "new", __WASI_OFLAGS_CREAT, __WASI_RIGHTS_FD_READ, 0) == (__wasi_fd_t)-1);
    E("r: CREAT existing", opened("  ", R, "f", __WASI_OFLAGS_CREAT, __WASI_RIGHTS_FD_READ, 0) == (__wasi_fd_t)-1);
    E("r: CREAT|EXCL existing",
      opened("  ", R, "f", __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, __WASI_RIGHTS_FD_READ, 0) == (__wasi_fd_t)-1);
    E("r: mkdir", __wasi_path_create_directory(R, "nd"));
    E("r: mkdir existing", __wasi_path_create_directory(R, "sub"));
    E("r: rmdir", __wasi_path_remove_directory(R, "sub"));
    E("r: rmdir missing", __wasi_path_remove_directory(R, "missing"));
    E("r: unlink", __wasi_path_unlink_file(R, "f"));
    E("r: unlink missing", __wasi_path_unlink_file(R, "missing"));
    E("r: symlink", __wasi_path_symlink("f", R, "l2"));
    E("r: set times", __wasi_path_filestat_set_times(R, 0, "f", 1, 2, 5));
    E("r: set times now", __wasi_path_filestat_set_times(R, 0, "f", 0, 0, 10));
    __wasi_filestat_t st = {0};
    E("r: filestat f", __wasi_path_filestat_get(R, 0, "f", &st));
    printf("  size %llu\n", (unsigned long long)st.size);
    E("r: readlink l", __wasi_path_readlink(R, "l", (uint8_t *)&st, 8, &(__wasi_size_t){0}));
    fdstat("r: fdstat", R);
    __wasi_fd_t fd = opened("r: open f to read", R, "f", 0, __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_SEEK, 0);
    fdstat("  fdstat", fd);
    E("  write", __wasi_fd_write(fd, &(__wasi_ciovec_t){(const uint8_t *)"z", 1}, 1, &(__wasi_size_t){0}));
    E("  pwrite", __wasi_fd_pwrite(fd, &(__wasi_ciovec_t){(const uint8_t *)"z", 1}, 1, 0, &(__wasi_size_t){0}));
    E("  set size", __wasi_fd_filestat_set_size(fd, 0));
    E("  set times", __wasi_fd_filestat_set_times(fd, 1, 2, 5));
    E("  set times now", __wasi_fd_filestat_set_times(fd, 0, 0, 10));
    E("  set APPEND", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_APPEND));
    E("  set NONBLOCK", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_NONBLOCK));
    E("  allocate", __wasi_fd_allocate(fd, 0, 1));
    E("  sync", __wasi_fd_sync(fd));
    E("  datasync", __wasi_fd_datasync(fd));
    E("  seek", __wasi_fd_seek(fd, 1, __WASI_WHENCE_SET, &(__wasi_filesize_t){0}));
    E("  advise", __wasi_fd_advise(fd, 0, 0, __WASI_ADVICE_NORMAL));
    E("  close", __wasi_fd_close(fd));
    __wasi_fd_t dir = opened("r: open sub", R, "sub", __WASI_OFLAGS_DIRECTORY, __WASI_RIGHTS_FD_READDIR, 0);
    fdstat("  fdstat of the dir", dir);
    E("  mkdir under it", __wasi_path_create_directory(dir, "x"));
    E("  CREAT under it", opened("  ", dir, "x", __WASI_OFLAGS_CREAT, __WASI_RIGHTS_FD_READ, 0) == (__wasi_fd_t)-1);
    E("  sync the dir", __wasi_fd_sync(dir));
    E("  set the dir's times", __wasi_fd_filestat_set_times(dir, 1, 2, 5));
    E("  close", __wasi_fd_close(dir));
    dir = opened("b: open d", B, "d", __WASI_OFLAGS_DIRECTORY, __WASI_RIGHTS_FD_READDIR, 0);
    fdstat("  fdstat of the dir", dir);
    E("  close", __wasi_fd_close(dir));
    E("r: renumber onto a closed fd", __wasi_fd_renumber(R, 20));
    put(W, "made", "in w");
    show(R, "w/made");
    E("r/w: unlink made through r", __wasi_path_unlink_file(R, "w/made"));
    E("r/w: unlink made through w", __wasi_path_unlink_file(W, "made"));
}

static void escapes(void) {
    E("symlink a/tob -> ../b/y", __wasi_path_symlink("../b/y", A, "tob"));
    __wasi_fd_t fd = opened("open a/tob", A, "tob", 0, __WASI_RIGHTS_FD_READ, 0);
    if (fd != (__wasi_fd_t)-1) __wasi_fd_close(fd);
    E("symlink a/abs -> /b/y", __wasi_path_symlink("/b/y", A, "abs"));
    E("open ../b/y", opened("  ", A, "../b/y", 0, __WASI_RIGHTS_FD_READ, 0) == (__wasi_fd_t)-1);
    E("open /b/y", opened("  ", A, "/b/y", 0, __WASI_RIGHTS_FD_READ, 0) == (__wasi_fd_t)-1);
    E("open r/../r/f", opened("  ", R, "../r/f", 0, __WASI_RIGHTS_FD_READ, 0) == (__wasi_fd_t)-1);
    E("open w/.. (r, from below)", opened("  ", W, "..", __WASI_OFLAGS_DIRECTORY, 0, 0) == (__wasi_fd_t)-1);
    E("filestat w/../f", __wasi_path_filestat_get(W, 0, "../f", &(__wasi_filestat_t){0}));
    E("rename a/y -> ../b/z", __wasi_path_rename(A, "y", A, "../b/z"));
    E("link a/y -> ../b/z", __wasi_path_link(A, 0, "y", A, "../b/z"));
    E("symlink through tob, follow", __wasi_path_filestat_get(A, 1, "tob", &(__wasi_filestat_t){0}));
    E("symlink through tob, nofollow", __wasi_path_filestat_get(A, 0, "tob", &(__wasi_filestat_t){0}));
    E("r: follow l (-> f)", __wasi_path_filestat_get(R, 1, "l", &(__wasi_filestat_t){0}));
    E("r: follow out (-> ../a)", __wasi_path_filestat_get(R, 1, "out", &(__wasi_filestat_t){0}));
    E("r: follow loop", __wasi_path_filestat_get(R, 1, "loop", &(__wasi_filestat_t){0}));
    E("r: open loop", opened("  ", R, "loop", 0, __WASI_RIGHTS_FD_READ, 0) == (__wasi_fd_t)-1);
    E("r: open loop/x", opened("  ", R, "loop/x", 0, __WASI_RIGHTS_FD_READ, 0) == (__wasi_fd_t)-1);
}

static void long_names(void) {
    static char name[6000];
    memset(name, 'n', sizeof name);
    name[255] = 0;
    __wasi_fd_t fd = opened("CREAT a 255-byte name", A, name, __WASI_OFLAGS_CREAT, RW, 0);
    E("  close", __wasi_fd_close(fd));
    E("  filestat it", __wasi_path_filestat_get(A, 0, name, &(__wasi_filestat_t){0}));
    E("  unlink it", __wasi_path_unlink_file(A, name));
    memset(name, 'n', sizeof name);
    name[256] = 0;
    E("CREAT a 256-byte name", opened("  ", A, name, __WASI_OFLAGS_CREAT, RW, 0) == (__wasi_fd_t)-1);
    E("  its errno", __wasi_path_open(A, 0, name, __WASI_OFLAGS_CREAT, RW, 0, 0, &fd));
    E("  mkdir", __wasi_path_create_directory(A, name));
    E("  filestat", __wasi_path_filestat_get(A, 0, name, &(__wasi_filestat_t){0}));
    E("  symlink to it", __wasi_path_symlink(name, A, "longlink"));
    E("  follow the link", __wasi_path_filestat_get(A, 1, "longlink", &(__wasi_filestat_t){0}));
    E("  rename to it", __wasi_path_rename(A, "x3", A, name));
    E("  unlink the link", __wasi_path_unlink_file(A, "longlink"));
    for (__wasi_size_t length = 4095; length <= 4097; length++) {
        memset(name, 'n', sizeof name);
        for (int i = 100; i < 5000; i += 101) name[i] = '/';
        name[length] = 0;
        char label[64];
        snprintf(label, sizeof label, "open a %u-byte path", length);
        E(label, __wasi_path_open(A, 0, name, 0, RW, 0, 0, &fd));
        snprintf(label, sizeof label, "mkdir a %u-byte path", length);
        E(label, __wasi_path_create_directory(A, name));
    }
}

int main(void) {
    prestats();
    fdstat("fdstat a", A);
    fdstat("fdstat r", R);
    across();
    read_only();
    escapes();
    long_names();
    return 0;
}
