/* How a program ends: exit codes, atexit handlers and stdio buffers flushed at exit, abort, _Exit,
   a failed assert; and entropy, a wide environment and arguments in UTF-8 on the way. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static void goodbye(void) { printf("atexit handler ran\n"); }

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "return";
    unsigned char random_bytes[300];
    int entropy = getentropy(random_bytes, 256);
    int nonzero = 0;
    for (int i = 0; i < 256; i++) nonzero += random_bytes[i] != 0;
    printf("getentropy %d, mostly random %d, too long %d\n", entropy, nonzero > 200, getentropy(random_bytes, 300));
    printf("arc4random differs %d\n", arc4random() != arc4random());
    for (int i = 1; i < argc; i++) printf("argv[%d] %zu bytes: %s\n", i, strlen(argv[i]), argv[i]);
    for (char **e = environ; *e; e++) printf("env %s\n", *e);
    atexit(goodbye);
    printf("unflushed, no newline");
    if (!strcmp(how, "exit255")) exit(255);
    if (!strcmp(how, "exit256")) exit(256);
    if (!strcmp(how, "exit-1")) exit(-1);
    if (!strcmp(how, "_Exit")) _Exit(3);
    if (!strcmp(how, "abort")) abort();
    if (!strcmp(how, "assert")) { fflush(stdout); assert(argc == 0); }
    return 0;
}
