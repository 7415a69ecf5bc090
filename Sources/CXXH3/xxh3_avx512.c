// XXH3 compiled for AVX-512 (called only once the CPU and kernel are known to run it: xxh3_dispatch.c).
#include "imc_xxh3.h"
#if defined(__x86_64__) && defined(__clang__)
#define XXH_VECTOR 3   /* XXH_AVX512 */
#define IMC_XXH3_NAME avx512
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#include "xxh3_build.h"
#pragma clang attribute pop
#endif
