#define _GNU_SOURCE
#include "imc_system.h"
#include <fcntl.h>

int imc_start_writeback(int fd, int64_t offset, int64_t count) {
    return sync_file_range(fd, (off64_t)offset, (off64_t)count, SYNC_FILE_RANGE_WRITE);
}
