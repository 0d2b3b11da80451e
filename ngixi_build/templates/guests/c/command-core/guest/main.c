// A C command guest: a WASI program; its arguments come from the caller, its lines go to stdout.
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: {{name}} NAME...\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        printf("Hello, %s!\n", argv[i]);
    }
    return 0;
}
