// Which XXH3 build the process uses: the widest the CPU runs, or the one IMGCONV_XXH3 names
// ("library", "avx2", "avx512"; benchmarks compare them), else the library's.
#include "imc_xxh3.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static imc_xxh128 library_hash(const void *data, size_t length) {
    XXH128_hash_t h = XXH3_128bits(data, length);
    imc_xxh128 r = {h.low64, h.high64};
    return r;
}

static void *library_create(void) {
    XXH3_state_t *s = XXH3_createState();
    if (s) XXH3_128bits_reset(s);
    return s;
}

static void library_destroy(void *state) { XXH3_freeState((XXH3_state_t *)state); }
static void library_reset(void *state) { XXH3_128bits_reset((XXH3_state_t *)state); }
static void library_update(void *state, const void *data, size_t length) {
    XXH3_128bits_update((XXH3_state_t *)state, data, length);
}
static imc_xxh128 library_digest(const void *state) {
    XXH128_hash_t h = XXH3_128bits_digest((const XXH3_state_t *)state);
    imc_xxh128 r = {h.low64, h.high64};
    return r;
}

static const imc_xxh3_build library = {
    "library", library_hash, library_create, library_destroy, library_reset, library_update, library_digest,
};

#if defined(__x86_64__) && defined(__clang__)
#define IMC_DECLARE(v)                                                                   \
    imc_xxh128 imc_xxh3_##v##_hash(const void *, size_t);                                \
    void *imc_xxh3_##v##_create(void);                                                   \
    void imc_xxh3_##v##_destroy(void *);                                                 \
    void imc_xxh3_##v##_reset(void *);                                                   \
    void imc_xxh3_##v##_update(void *, const void *, size_t);                            \
    imc_xxh128 imc_xxh3_##v##_digest(const void *);                                      \
    static const imc_xxh3_build v = {#v, imc_xxh3_##v##_hash, imc_xxh3_##v##_create,     \
                                     imc_xxh3_##v##_destroy, imc_xxh3_##v##_reset,       \
                                     imc_xxh3_##v##_update, imc_xxh3_##v##_digest};
IMC_DECLARE(avx2)
IMC_DECLARE(avx512)

// __builtin_cpu_supports reports AVX2 and AVX-512 only where the kernel saves their registers (XGETBV).
static int runs(const imc_xxh3_build *b) {
    __builtin_cpu_init();
    if (b == &avx512) return __builtin_cpu_supports("avx512f");
    if (b == &avx2) return __builtin_cpu_supports("avx2");
    return 1;
}
static const imc_xxh3_build *const builds[] = {&avx512, &avx2, &library};
#else
static int runs(const imc_xxh3_build *b) { (void)b; return 1; }
static const imc_xxh3_build *const builds[] = {&library};
#endif

const imc_xxh3_build *imc_xxh3_runnable(size_t i) {
    // `builds` is widest first.
    for (size_t k = sizeof builds / sizeof builds[0]; k-- > 0;) {
        if (runs(builds[k]) && i-- == 0) return builds[k];
    }
    return NULL;
}

const imc_xxh3_build *imc_xxh3_named(const char *name) {
    for (size_t i = 0; i < sizeof builds / sizeof builds[0]; i++) {
        if (strcmp(builds[i]->name, name) == 0) return runs(builds[i]) ? builds[i] : NULL;
    }
    return NULL;
}

const imc_xxh3_build *imc_xxh3_best(void) {
    // Chosen once; two first calls at the same time pick the same build.
    static const imc_xxh3_build *chosen;
    const imc_xxh3_build *b = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (b) return b;
    const char *wanted = getenv("IMGCONV_XXH3");
    if (!wanted || (b = imc_xxh3_named(wanted)) == NULL) {
        b = &library;
        for (size_t i = 0; i < sizeof builds / sizeof builds[0]; i++) {
            if (runs(builds[i])) { b = builds[i]; break; }
        }
    }
    __atomic_store_n(&chosen, b, __ATOMIC_RELEASE);
    return b;
}
