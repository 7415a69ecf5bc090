// Linux calls that Swift's Glibc module does not import (they need _GNU_SOURCE).
#ifndef IMC_SYSTEM_H
#define IMC_SYSTEM_H
#include <stdint.h>

// Asks the kernel to start writing [offset, offset + count) of `fd` to disk without waiting
// (sync_file_range with SYNC_FILE_RANGE_WRITE). Returns 0, or -1 with errno set.
int imc_start_writeback(int fd, int64_t offset, int64_t count);

#endif
