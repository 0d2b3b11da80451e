/* A command-line tool's view of WASI: argv, the environment, stdin to EOF, stdout/stderr, clocks, sleep, exit. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("argc %d\n", argc);
    for (int i = 1; i < argc; i++) printf("argv[%d] = '%s'\n", i, argv[i]);
    int count = 0;
    for (char **e = environ; *e; e++) count++;
    printf("environ has %d entries\n", count);
    const char *home = getenv("HOME"), *missing = getenv("NOT_SET");
    printf("HOME=%s NOT_SET=%s\n", home ? home : "(null)", missing ? missing : "(null)");
    setenv("ADDED", "1", 1);
    printf("ADDED=%s\n", getenv("ADDED"));
    for (int fd = 0; fd < 4; fd++) {
        errno = 0;
        int tty = isatty(fd);
        printf("isatty(%d) = %d %s\n", fd, tty, tty ? "" : strerror(errno));
    }
    errno = 0;
    printf("lseek(0) = %ld %s\n", (long)lseek(0, 0, SEEK_CUR), strerror(errno));
    errno = 0;
    printf("lseek(1) = %ld %s\n", (long)lseek(1, 0, SEEK_SET), strerror(errno));

    size_t total = 0, lines = 0;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, stdin)) > 0) {
        total += got;
        for (size_t i = 0; i < got; i++) lines += buf[i] == '\n';
    }
    printf("stdin: %zu bytes, %zu lines, eof %d error %d\n", total, lines, feof(stdin), ferror(stdin));
    printf("read after eof: %zd\n", read(0, buf, 10));

    struct timespec real, mono1, mono2, res;
    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono1);
    struct timespec nap = {0, 20 * 1000 * 1000};
    int slept = nanosleep(&nap, NULL);
    clock_gettime(CLOCK_MONOTONIC, &mono2);
    long elapsed_ms = (mono2.tv_sec - mono1.tv_sec) * 1000 + (mono2.tv_nsec - mono1.tv_nsec) / 1000000;
    printf("realtime after 2020: %d\n", real.tv_sec > 1577836800);
    printf("nanosleep %d, slept at least 20 ms: %d, under 2 s: %d\n", slept, elapsed_ms >= 20, elapsed_ms < 2000);
    printf("clock_getres realtime %d monotonic %d\n", clock_getres(CLOCK_REALTIME, &res), clock_getres(CLOCK_MONOTONIC, &res));
    errno = 0;
    printf("clock_gettime bad clock %d %s\n", clock_gettime((clockid_t)99, &res), strerror(errno));
    printf("sleep(0) %u usleep %d\n", sleep(0), usleep(1000));
    printf("time() sane: %d\n", time(NULL) > 1577836800);

    fprintf(stderr, "a warning on stderr: %s\n", strerror(ENOENT));
    static char big[300000];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = '\n';
    size_t wrote = fwrite(big, 1, sizeof big, stdout);
    printf("\nlarge write %zu\n", wrote);
    fflush(stdout);
    errno = 0;
    printf("write to closed fd %zd %s\n", write(9, "x", 1), strerror(errno));
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--exit=", 7) == 0) exit(atoi(argv[i] + 7));
    return 0;
}
