// XXH3 compiled for AVX2 (called only once the CPU is known to have it: xxh3_dispatch.c).
#include "imc_xxh3.h"
#if defined(__x86_64__) && defined(__clang__)
#define XXH_VECTOR 2   /* XXH_AVX2 */
#define IMC_XXH3_NAME avx2
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#include "xxh3_build.h"
#pragma clang attribute pop
#endif
