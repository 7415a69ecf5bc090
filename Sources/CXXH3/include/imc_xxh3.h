#ifndef IMC_XXH3_H
#define IMC_XXH3_H

#include <stddef.h>
#include <stdint.h>

// XXH3-128 (seed 0) for the manifest's tensor checksums, in the build the CPU runs fastest.
// Debian's libxxhash is compiled for the x86-64 baseline: its SSE2 path (about 16 GB/s here).
// xxHash's own header also holds its AVX2 and AVX-512 paths; this target compiles the header
// twice more, once for each (a `#pragma clang attribute` gives every function of the file that
// target: no compiler flag for the package), and the first call picks the widest one the CPU
// and the kernel run, falling back to the library. Every build gives the same values (xxHash's
// definition; tests compare them with the library's on the same bytes).

#ifndef __clang__   // the nullability marks are clang's (Swift reads them); gcc builds bench/limit
#define _Nonnull
#define _Nullable
#endif

typedef struct {
    uint64_t low64;
    uint64_t high64;
} imc_xxh128;

// One build: the one-call hash and the streaming state (a state is used with the build that made it).
typedef struct {
    const char *_Nonnull name;   // "library", "avx2", "avx512"
    imc_xxh128 (*_Nonnull hash)(const void *_Nullable data, size_t length);
    void *_Nullable (*_Nonnull create)(void);   // reset already; NULL: out of memory
    void (*_Nonnull destroy)(void *_Nonnull state);
    void (*_Nonnull reset)(void *_Nonnull state);
    void (*_Nonnull update)(void *_Nonnull state, const void *_Nullable data, size_t length);
    imc_xxh128 (*_Nonnull digest)(const void *_Nonnull state);
} imc_xxh3_build;

// The build this process uses (chosen at the first call, then the same).
const imc_xxh3_build *_Nonnull imc_xxh3_best(void);

// The i-th build this CPU runs, narrowest first (0: the library's), NULL past the last.
const imc_xxh3_build *_Nullable imc_xxh3_runnable(size_t i);

// A build by name, NULL when this CPU (or kernel) cannot run it or it is not compiled here.
const imc_xxh3_build *_Nullable imc_xxh3_named(const char *_Nonnull name);

#endif
