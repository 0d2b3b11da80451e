// A C library guest: `greet` takes text in and gives text out through the call data ABI, and logs.
// Its host functions come from "ngixi.h", generated from the WIT catalog (`ngixi wit` shows it).
#include <stdio.h>
#include <stdlib.h>

#include "ngixi.h"

/* The call's input: its length first, then its bytes; NULL when it cannot be read. */
static char *read_input(uint32_t *length) {
    if (ngixi_data_input(NULL, 0, length) != NGIXI_OK && *length == 0) return NULL;
    char *text = malloc(*length + 1);
    if (text == NULL || ngixi_data_input((uint8_t *)text, *length, length) != NGIXI_OK) return NULL;
    text[*length] = '\0';
    return text;
}

static void write_text(const char *text, size_t length) { ngixi_data_output((const uint8_t *)text, length); }

/* "Hello, <input>!" */
void greet(void) {
    uint32_t length = 0;
    char *name = read_input(&length);
    if (name == NULL) return;
    char line[128];
    int logged = snprintf(line, sizeof line, "{{name}} greets %s", name);
    ngixi_log_write_at(NGIXI_LOG_LEVEL_INFO, line, logged < (int)sizeof line ? (size_t)logged : sizeof line - 1);
    write_text("Hello, ", 7);
    write_text(name, length);
    write_text("!", 1);
    free(name);
}
