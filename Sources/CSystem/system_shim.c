#define _GNU_SOURCE
#include "imc_system.h"
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/vfs.h>

int imc_start_writeback(int fd, int64_t offset, int64_t count) {
    return sync_file_range(fd, (off64_t)offset, (off64_t)count, SYNC_FILE_RANGE_WRITE);
}

int imc_install_signal_handler(int signo, void (*handler)(int), const int *blocked, int count) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    for (int i = 0; i < count; i++) sigaddset(&action.sa_mask, blocked[i]);
    return sigaction(signo, &action, NULL);
}

// Bit 0: a commit section is open; the bits above: the signal noted during it.
static atomic_int commit_state = 0;

void imc_begin_commit_section(void) {
    atomic_fetch_or(&commit_state, 1);
}

int imc_end_commit_section(void) {
    return atomic_exchange(&commit_state, 0) >> 1;
}

int imc_defer_signal(int signo) {
    int old = atomic_load(&commit_state);
    while (old & 1) {
        if (atomic_compare_exchange_weak(&commit_state, &old, 1 | (signo << 1))) return 1;
    }
    return 0;
}

int64_t imc_filesystem_type(const char *path) {
    struct statfs fs;
    if (statfs(path, &fs) != 0) return -1;
    return (int64_t)fs.f_type;
}
