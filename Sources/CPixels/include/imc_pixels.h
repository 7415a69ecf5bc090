#ifndef IMC_PIXELS_H
#define IMC_PIXELS_H

#include <stddef.h>
#include <stdint.h>

// The 8-bit resampling passes (Pillow's fixed-point arithmetic: 32-bit accumulators starting at
// half of 1 << precision_bits, wrapping as Swift's &+ and &*, results shifted right and clamped to
// 0...255). On x86-64 each is compiled three times, for the baseline, x86-64-v2 (SSE4.2) and
// x86-64-v3 (AVX2: 8 accumulators a vector in the vertical pass, 7% less CPU on a resize run), and the
// loader picks the one the CPU runs (target_clones): the speed of the wider instructions without
// a compiler flag for the whole package (a flag SwiftPM refuses in a dependency).

// Horizontal pass over `rows` rows of `width` pixels of `ch` interleaved samples: output pixel x
// of a row sums `counts[x]` taps from input pixel `starts[x]`, with weights kk[x * taps ...].
void imc_resize_h8(const uint8_t *src, uint8_t *dst, const int32_t *kk, const intptr_t *starts,
                   const intptr_t *counts, intptr_t taps, intptr_t width, intptr_t out_width,
                   intptr_t rows, intptr_t ch, int precision_bits);

// Vertical pass: output row y sums `counts[y]` input rows from row `starts[y]`, each of
// `row_length` samples; `acc` holds `row_length` accumulators.
void imc_resize_v8(const uint8_t *src, uint8_t *dst, const int32_t *kk, const intptr_t *starts,
                   const intptr_t *counts, intptr_t taps, intptr_t row_length, intptr_t out_height,
                   int precision_bits, int32_t *acc);

// Gray from `count` RGB (stride 3) or RGBA (stride 4) 8-bit pixels, as Pillow's convert("L"):
// (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16.
void imc_luma8(const uint8_t *src, uint8_t *dst, intptr_t count, intptr_t stride);

// RGB (out_channels 3) or RGBA with opaque alpha (4) from `count` gray 8-bit pixels.
void imc_gray_expand8(const uint8_t *src, uint8_t *dst, intptr_t count, intptr_t out_channels);

#endif
