// One build of XXH3-128 from xxHash's header, its functions named imc_xxh3_<IMC_XXH3_NAME>_*.
// Included by a file that has set XXH_VECTOR and the target of its functions.
// The header includes the AVX intrinsics only when the whole file is compiled for AVX2; here
// only its functions are, so they are included first (clang declares them for any target).
#include <immintrin.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define IMC_CAT2(a, b) a##b
#define IMC_CAT(a, b) IMC_CAT2(a, b)
#define IMC_FN(name) IMC_CAT(IMC_CAT(imc_xxh3_, IMC_XXH3_NAME), IMC_CAT(_, name))

static imc_xxh128 IMC_CAT(convert_, IMC_XXH3_NAME)(XXH128_hash_t h) {
    imc_xxh128 r = {h.low64, h.high64};
    return r;
}

imc_xxh128 IMC_FN(hash)(const void *data, size_t length) {
    return IMC_CAT(convert_, IMC_XXH3_NAME)(XXH3_128bits(data, length));
}

void *IMC_FN(create)(void) {
    XXH3_state_t *s = XXH3_createState();
    if (s) XXH3_128bits_reset(s);
    return s;
}

void IMC_FN(destroy)(void *state) { XXH3_freeState((XXH3_state_t *)state); }

void IMC_FN(reset)(void *state) { XXH3_128bits_reset((XXH3_state_t *)state); }

void IMC_FN(update)(void *state, const void *data, size_t length) {
    XXH3_128bits_update((XXH3_state_t *)state, data, length);
}

imc_xxh128 IMC_FN(digest)(const void *state) {
    return IMC_CAT(convert_, IMC_XXH3_NAME)(XXH3_128bits_digest((const XXH3_state_t *)state));
}
