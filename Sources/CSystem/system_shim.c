#define _GNU_SOURCE
#include "imc_system.h"
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>

int imc_start_writeback(int fd, int64_t offset, int64_t count) {
    return sync_file_range(fd, (off64_t)offset, (off64_t)count, SYNC_FILE_RANGE_WRITE);
}

// cachestat(2) (Linux 6.5): how much of a range is in the page cache, without reading it.
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
struct imc_cachestat_range { uint64_t off, len; };
struct imc_cachestat { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; };
static atomic_int cachestat_missing = 0;   // ENOSYS, or refused by a seccomp filter

int imc_file_cached(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    // cachestat first: a read, even RWF_NOWAIT's, may start reading the file in, and finish it
    // before it answers (a fast disk): the answer would then be "cached".
    if (!atomic_load_explicit(&cachestat_missing, memory_order_relaxed)) {
        struct imc_cachestat_range range = { 0, 1 };
        struct imc_cachestat cs;
        if (syscall(__NR_cachestat, fd, &range, &cs, 0) == 0) {
            struct stat st;
            int cached = cs.nr_cache > 0 || (fstat(fd, &st) == 0 && st.st_size == 0);
            close(fd);
            return cached;
        }
        if (errno == ENOSYS || errno == EPERM || errno == EINVAL)
            atomic_store_explicit(&cachestat_missing, 1, memory_order_relaxed);
    }
    char byte;
    struct iovec v = { &byte, 1 };
    ssize_t n = preadv2(fd, &v, 1, 0, RWF_NOWAIT);
    int err = errno;
    close(fd);
    if (n >= 0) return 1;
    return err == EAGAIN ? 0 : -1;
}

int imc_open_direct(const char *path) {
    struct statfs fs;
    if (statfs(path, &fs) != 0) return -1;
    switch ((unsigned long)fs.f_type) {
    case 0xEF53UL:        // ext2/3/4
    case 0x58465342UL:    // XFS
    case 0x9123683EUL:    // btrfs
    case 0xF2F52010UL:    // F2FS
        break;
    default:
        return -1;
    }
    return open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
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

static int compare_names(const void *a, const void *b, void *names) {
    return strcmp((const char *)names + ((const imc_dir_entry *)a)->offset, (const char *)names + ((const imc_dir_entry *)b)->offset);
}

int imc_list_dir(const char *path, imc_dir_list *out) {
    memset(out, 0, sizeof *out);
    DIR *dir = opendir(path);
    if (!dir) return -1;
    char *names = NULL;
    imc_dir_entry *entries = NULL;
    size_t used = 0, size = 0, count = 0, cap = 0;
    int err = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(dir);
        if (!e) { err = errno; break; }
        const char *n = e->d_name;
        if (n[0] == '.' || strcmp(n, "__MACOSX") == 0) continue;
        size_t len = strlen(n) + 1;
        if (used + len > size) {
            size_t grown = size ? 2 * size : 16384;
            while (grown < used + len) grown *= 2;
            char *p = realloc(names, grown);
            if (!p) { err = ENOMEM; break; }
            names = p;
            size = grown;
        }
        if (count == cap) {
            size_t grown = cap ? 2 * cap : 256;
            imc_dir_entry *p = realloc(entries, grown * sizeof *entries);
            if (!p) { err = ENOMEM; break; }
            entries = p;
            cap = grown;
        }
        memcpy(names + used, n, len);
        entries[count].offset = used;
        entries[count].type = e->d_type;
        used += len;
        count++;
    }
    closedir(dir);
    if (err) {
        free(names); free(entries);
        errno = err;
        return -1;
    }
    if (count) qsort_r(entries, count, sizeof *entries, compare_names, names);
    out->names = names;
    out->entries = entries;
    out->count = count;
    return 0;
}

void imc_free_dir_list(imc_dir_list *list) {
    free(list->names);
    free(list->entries);
    memset(list, 0, sizeof *list);
}

// getdents64's record (the kernel's layout; glibc's struct dirent64 matches it).
struct imc_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

// Empties the folder open as `fd` (depth-first), then the caller removes it.
static int imc_empty_folder(int fd, int depth) {
    if (depth > 64) { errno = ELOOP; return -1; }
    char buffer[4096];
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buffer, sizeof buffer);
        if (n < 0) return -1;
        if (n == 0) return 0;
        int removed = 0;
        for (long at = 0; at < n;) {
            struct imc_dirent64 *e = (struct imc_dirent64 *)(buffer + at);
            at += e->d_reclen;
            const char *name = e->d_name;
            if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
            if (unlinkat(fd, name, 0) == 0) { removed = 1; continue; }
            if (errno != EISDIR && errno != EPERM) return -1;
            int child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (child < 0) return -1;
            int rc = imc_empty_folder(child, depth + 1);
            close(child);
            if (rc != 0 || unlinkat(fd, name, AT_REMOVEDIR) != 0) return -1;
            removed = 1;
        }
        // Entries were removed while listing: start the listing over from the beginning.
        if (removed && lseek(fd, 0, SEEK_SET) < 0) return -1;
    }
}

int imc_remove_tree(const char *path) {
    if (unlink(path) == 0) return 0;
    if (errno != EISDIR && errno != EPERM) return -1;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = imc_empty_folder(fd, 0);
    close(fd);
    if (rc != 0) return -1;
    return rmdir(path);
}

int imc_exchange(const char *a, const char *b) {
    return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

#include <malloc.h>

int imc_limit_malloc_arenas(int count) {
    return mallopt(M_ARENA_MAX, count);
}

int imc_keep_freed_memory(int bytes) {
    int a = mallopt(M_MMAP_THRESHOLD, bytes);
    int b = mallopt(M_TRIM_THRESHOLD, bytes);
    return a && b;
}
