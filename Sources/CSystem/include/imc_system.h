// Linux calls that Swift's Glibc module does not import (they need _GNU_SOURCE).
#ifndef IMC_SYSTEM_H
#define IMC_SYSTEM_H
#include <stddef.h>
#include <stdint.h>

// Whether the first byte of the file at `path` is in the page cache (cachestat, or where there
// is none preadv2 with RWF_NOWAIT): 1 yes, 0 no (a read would wait for the disk), -1 cannot tell.
int imc_file_cached(const char *path);

// Opens the file at `path` a second time for writing with O_DIRECT (its writes bypass the page
// cache: no copy into it, no writeback of it), when it lies on a local disk file system known to
// take direct I/O well (ext4, XFS, btrfs, F2FS). Returns the descriptor, or -1: another file
// system (tmpfs, network and FUSE file systems, where direct I/O may be slow, unsupported or
// ignored) or a failed open; the caller then writes through the page cache as before.
int imc_open_direct(const char *path);

// Asks the kernel to start writing [offset, offset + count) of `fd` to disk without waiting
// (sync_file_range with SYNC_FILE_RANGE_WRITE). Returns 0, or -1 with errno set.
int imc_start_writeback(int fd, int64_t offset, int64_t count);

// Installs `handler` for `signo` with sigaction, every signal of `blocked` (`count` of them)
// blocked while it runs, so that a second signal cannot interrupt the clean-up. Returns 0, or -1
// with errno set.
int imc_install_signal_handler(int signo, void (*handler)(int), const int *blocked, int count);

// A commit section: while outputs are being renamed into place, a handled signal is only noted
// (the handler calls imc_defer_signal), and acted on when the section ends, so that an
// interrupted run never leaves a new output beside an old manifest. Async-signal-safe (atomics).
void imc_begin_commit_section(void);
// Ends the section; returns the signal that arrived during it, or 0.
int imc_end_commit_section(void);
// In a signal handler: notes `signo` and returns 1 when a commit section is open, else returns 0.
int imc_defer_signal(int signo);

// The filesystem type of `path` (statfs's f_type, a magic number such as 0x9FA0 for proc), or -1
// with errno set. (Swift cannot name `struct statfs` beside the function of the same name.)
int64_t imc_filesystem_type(const char *path);

// Removes `path`: a file, or a folder with everything in it (links are removed, never followed).
// Only async-signal-safe system calls (open, getdents64, unlinkat, close), so a signal handler
// may call it on a temporary output folder. Returns 0, or -1 with errno set.
int imc_remove_tree(const char *path);

// A folder's visible entries: names not starting with '.' and not __MACOSX, sorted by their
// bytes (strcmp: code-point order for UTF-8), each with its d_type. One block of names, NUL
// after each; `entries[i].offset` is where the i-th name starts.
typedef struct {
    size_t offset;
    unsigned char type;
} imc_dir_entry;

typedef struct {
    char *names;
    imc_dir_entry *entries;
    size_t count;
} imc_dir_list;

// Lists `path` into `out` (free it with imc_free_dir_list). Returns 0, or -1 with errno set (the
// folder cannot be opened, reading it fails part way, or memory runs out); `out` is then empty.
int imc_list_dir(const char *path, imc_dir_list *out);
void imc_free_dir_list(imc_dir_list *list);

// Swaps two paths atomically (renameat2 with RENAME_EXCHANGE). Returns 0, or -1 with errno set.
int imc_exchange(const char *a, const char *b);

// Keeps glibc's malloc to `count` arenas (mallopt M_ARENA_MAX): each further arena reserves
// 64 MiB of address space, which counts against RLIMIT_AS whether it is used or not.
int imc_limit_malloc_arenas(int count);

// Sets glibc malloc's mmap and trim thresholds (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) to `bytes`:
// blocks below it come from the heap and freed memory up to it stays there, instead of each
// image-sized block being mapped, zeroed by the kernel and unmapped again. Returns 1 on success.
int imc_keep_freed_memory(int bytes);

#endif
