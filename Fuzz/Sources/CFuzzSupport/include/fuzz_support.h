// What the Swift fuzz targets need from C.
#ifndef FUZZ_SUPPORT_H
#define FUZZ_SUPPORT_H
#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver (in the runtime that -sanitize=fuzzer links). Each fuzz executable's main
// calls it: SwiftPM renames an executable's entry point, so libFuzzer's own main cannot be used.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

// An anonymous in-memory file (memfd_create, which Swift's Glibc module does not declare), so the
// readers that take a path can read fuzz input through /proc/self/fd/N without touching the disk.
// Returns the descriptor, or -1.
int fuzz_memfd(void);

#endif
