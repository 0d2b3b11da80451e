// A C command guest: a WASI program; its arguments come from the caller, its lines go to stdout.
#include <string.h>
#include <unistd.h>

/* write(2), not printf: C's buffered stdio imports WASI's fd_seek, which needs [capabilities.fs]. */
static void print(int fd, const char *text) {
    size_t rest = strlen(text);
    while (rest > 0) {
        ssize_t written = write(fd, text, rest);
        if (written <= 0) return;
        text += written;
        rest -= (size_t)written;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print(STDERR_FILENO, "usage: {{name}} NAME...\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        print(STDOUT_FILENO, "Hello, ");
        print(STDOUT_FILENO, argv[i]);
        print(STDOUT_FILENO, "!\n");
    }
    return 0;
}
