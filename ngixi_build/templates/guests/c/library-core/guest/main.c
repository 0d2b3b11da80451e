// A C library guest: `greet` takes text in and gives text out through the call data ABI, and logs.
// Its host functions come from "ngixi.h", generated from the WIT catalog (`ngixi wit` shows it).
#include <stdio.h>
#include <stdlib.h>

#include "ngixi.h"

/* "Hello, <input>!" */
void greet(void) {
    uint32_t length = 0;
    char *name = ngixi_data_input_alloc(&length, NULL); /* the input, NUL-terminated; free it */
    if (name == NULL) { /* malloc found no memory for it: end the call (its line names limits.memory_pages) */
        ngixi_out_of_memory();
    }
    char line[128];
    int logged = snprintf(line, sizeof line, "{{name}} greets %s", name);
    ngixi_log_write_at(NGIXI_LOG_LEVEL_INFO, line, logged < (int)sizeof line ? (size_t)logged : sizeof line - 1);
    ngixi_data_output_str("Hello, ");
    ngixi_data_output((const uint8_t *)name, length);
    ngixi_data_output_str("!");
    free(name);
}
