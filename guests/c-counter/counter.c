// A C library guest: counts its calls in the host's key-value store and logs each count.
#include <stdio.h>
#include <string.h>

#include "ngixi.h"

static const char NAMESPACE[] = "counters";
static const uint8_t KEY[] = "c-hits";

static void log_line(ngixi_log_level level, const char *message) {
    ngixi_log_write_at(level, message, strlen(message));
}

/* The new count, or minus the ngixi status code. */
int increment(void) {
    uint32_t count = 0, length = 0;
    ngixi_status found = ngixi_kv_get(NAMESPACE, strlen(NAMESPACE), KEY, sizeof KEY - 1,
                                      (uint8_t *)&count, sizeof count, &length);
    if (found != NGIXI_OK && found != NGIXI_NOT_FOUND) return -found;
    count = (found == NGIXI_OK && length == sizeof count ? count : 0) + 1;
    ngixi_status stored = ngixi_kv_set(NAMESPACE, strlen(NAMESPACE), KEY, sizeof KEY - 1,
                                       (const uint8_t *)&count, sizeof count);
    if (stored != NGIXI_OK) return -stored;
    char line[48];
    snprintf(line, sizeof line, "c-counter: call number %u", (unsigned)count);
    log_line(NGIXI_LOG_LEVEL_INFO, line);
    return (int)count;
}

int add(int a, int b) { return a + b; }
