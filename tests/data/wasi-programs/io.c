/* Data in and out of files as programs move it: big writes, sparse files, append mode, vectored I/O,
   fsync, fallocate, truncate by path, times by path, realpath, chdir, poll. Prints each result. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define TRY(label, expr) do { errno = 0; long r_ = (long)(expr); printf("%s -> %ld %s\n", label, r_, r_ < 0 ? strerror(errno) : ""); } while (0)

/* Moves every byte of `iov` as a careful program does: a short transfer (which WASI allows) is resumed. */
static ssize_t vectored(int fd, struct iovec *iov, int count, ssize_t (*move)(int, const struct iovec *, int)) {
    ssize_t total = 0;
    while (count > 0) {
        ssize_t done = move(fd, iov, count);
        if (done <= 0) return done < 0 ? done : total;
        total += done;
        while (count > 0 && (size_t)done >= iov->iov_len) { done -= (ssize_t)iov->iov_len; iov++; count--; }
        if (count > 0) { iov->iov_base = (char *)iov->iov_base + done; iov->iov_len -= (size_t)done; }
    }
    return total;
}

int main(void) {
    static unsigned char block[1 << 20];
    for (size_t i = 0; i < sizeof block; i++) block[i] = (unsigned char)(i * 7 + i / 251);
    int fd = open("data/big.bin", O_CREAT | O_RDWR | O_TRUNC, 0600);
    long written = 0;
    for (int i = 0; i < 5; i++) written += write(fd, block, sizeof block);
    printf("wrote %ld\n", written);
    unsigned long sum = 0; ssize_t got; lseek(fd, 0, SEEK_SET);
    while ((got = read(fd, block, 65536)) > 0) for (ssize_t i = 0; i < got; i++) sum += block[i];
    printf("read back checksum %lu\n", sum);
    TRY("pread at 3 MiB", pread(fd, block, 100, 3 << 20));
    TRY("pread past end", pread(fd, block, 100, 6 << 20));
    TRY("sparse lseek", lseek(fd, 10 << 20, SEEK_SET));
    TRY("write at 10 MiB", write(fd, "end", 3));
    struct stat st; fstat(fd, &st); printf("size %lld\n", (long long)st.st_size);
    TRY("fsync", fsync(fd));
    TRY("fdatasync", fdatasync(fd));
    TRY("posix_fallocate", posix_fallocate(fd, 0, 12 << 20));
    fstat(fd, &st); printf("size after fallocate %lld\n", (long long)st.st_size);
    TRY("posix_fadvise", posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL));
    close(fd);
    TRY("truncate by path", truncate("data/big.bin", 1000));
    stat("data/big.bin", &st); printf("size %lld\n", (long long)st.st_size);
    TRY("truncate missing", truncate("data/none", 0));

    fd = open("data/log.txt", O_CREAT | O_WRONLY | O_APPEND, 0644);
    write(fd, "one\n", 4); lseek(fd, 0, SEEK_SET); write(fd, "two\n", 4);
    TRY("position after append", lseek(fd, 0, SEEK_CUR));
    close(fd);
    FILE *f = fopen("data/log.txt", "a+");
    char line[64]; fputs("three\n", f); rewind(f);
    while (fgets(line, sizeof line, f)) printf("log: %s", line);
    fclose(f);
    f = fopen("data/log.txt", "r");
    int c, count = 0; while ((c = fgetc(f)) != EOF) count++;
    ungetc('x', f); printf("chars %d, after ungetc %c\n", count, fgetc(f));
    fclose(f);

    struct iovec out[3] = {{"alpha ", 6}, {"beta ", 5}, {"gamma\n", 6}};
    fd = open("data/vec.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    printf("writev all %zd\n", vectored(fd, out, 3, writev));
    char a[4], b[8], rest[16] = {0};
    struct iovec in[3] = {{a, 4}, {b, 8}, {rest, 15}};
    lseek(fd, 0, SEEK_SET);
    printf("readv all %zd: %.4s|%.8s|%s", vectored(fd, in, 3, readv), a, b, rest);
    close(fd);

    struct timespec times[2] = {{1300000000, 0}, {1400000000, 5}};
    TRY("utimensat", utimensat(AT_FDCWD, "data/vec.txt", times, 0));
    stat("data/vec.txt", &st); printf("mtime %lld.%09ld\n", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    symlink("vec.txt", "data/veclink");
    TRY("utimensat nofollow", utimensat(AT_FDCWD, "data/veclink", times, AT_SYMLINK_NOFOLLOW));
    struct stat lst; lstat("data/veclink", &lst); printf("link mtime %lld\n", (long long)lst.st_mtim.tv_sec);
    TRY("utimensat now", utimensat(AT_FDCWD, "data/vec.txt", NULL, 0));
    stat("data/vec.txt", &st); printf("mtime now recent %d\n", st.st_mtim.tv_sec > 1577836800);
    struct timespec bad[2] = {{0, 2000000000}, {0, 0}};
    TRY("utimensat bad nsec", utimensat(AT_FDCWD, "data/vec.txt", bad, 0));

    char resolved[PATH_MAX];
    mkdir("data/x", 0755); mkdir("data/x/y", 0755);
    printf("realpath %s\n", realpath("data/x/y/../y/./", resolved) ? resolved : strerror(errno));
    printf("realpath through link %s\n", realpath("data/veclink", resolved) ? resolved : strerror(errno));
    printf("realpath missing %s\n", realpath("data/x/nothing", resolved) ? resolved : strerror(errno));
    TRY("chdir data/x", chdir("data/x"));
    printf("cwd %s\n", getcwd(resolved, sizeof resolved));
    TRY("open ../vec.txt", open("../vec.txt", O_RDONLY) >= 0);
    TRY("mkdir y/z", mkdir("y/z", 0755));
    TRY("chdir ..", chdir(".."));
    printf("cwd %s\n", getcwd(resolved, sizeof resolved));
    TRY("chdir /", chdir("/"));
    TRY("stat x/y/z", stat("data/x/y/z", &st));
    TRY("chdir to file", chdir("data/vec.txt"));
    TRY("chdir missing", chdir("data/missing"));

    struct pollfd p[2] = {{0, POLLIN, 0}, {1, POLLOUT, 0}};
    TRY("poll stdin/stdout", poll(p, 2, 100));
    printf("revents %x %x\n", p[0].revents, p[1].revents);
    fd = open("data/vec.txt", O_RDONLY);
    struct pollfd pf = {fd, POLLIN, 0};
    TRY("poll file", poll(&pf, 1, 100));
    printf("file revents %x\n", pf.revents);
    TRY("poll nothing for 10 ms", poll(NULL, 0, 10));
    return 0;
}
