#include "imc_pixels.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define IMC_CLONES __attribute__((target_clones("arch=x86-64-v3", "arch=x86-64-v2", "default")))
#else
#define IMC_CLONES
#endif

// Wrapping 32-bit arithmetic (signed overflow is undefined in C; the sums are Swift's &+ and &*).
static inline int32_t wrap_madd(int32_t acc, int32_t sample, int32_t weight) {
    return (int32_t)((uint32_t)acc + (uint32_t)sample * (uint32_t)weight);
}

static inline uint8_t clip8(int32_t acc, int bits) {
    int32_t v = acc >> bits;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

typedef uint32_t v4u __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef uint8_t v4b __attribute__((vector_size(4)));

// One row, every sample on its own: what the four-lane pass leaves (the last row, where reading a
// pixel's four bytes would pass the buffer's end) and the gray and gray+alpha images.
static inline void h8_scalar(const uint8_t *row, uint8_t *out, const int32_t *kk, const intptr_t *starts,
                             const intptr_t *counts, intptr_t taps, intptr_t out_width, intptr_t ch, int bits) {
    const int32_t half = (int32_t)1 << (bits - 1);
    if (ch == 1) {  // gray: one sum per pixel, the channel loop gone (a tenth of a gray resize run)
        for (intptr_t x = 0; x < out_width; x++) {
            const int32_t *k = kk + x * taps;
            const uint8_t *p = row + starts[x];
            int32_t a = half;
            for (intptr_t t = 0; t < counts[x]; t++) a = wrap_madd(a, p[t], k[t]);
            out[x] = clip8(a, bits);
        }
        return;
    }
    for (intptr_t x = 0; x < out_width; x++) {
        const int32_t *k = kk + x * taps;
        const uint8_t *p = row + starts[x] * ch;
        for (intptr_t c = 0; c < ch; c++) {
            int32_t a = half;
            for (intptr_t t = 0; t < counts[x]; t++) a = wrap_madd(a, p[t * ch + c], k[t]);
            out[c] = clip8(a, bits);
        }
        out += ch;
    }
}

IMC_CLONES
void imc_resize_h8(const uint8_t *src, uint8_t *dst, const int32_t *kk, const intptr_t *starts,
                   const intptr_t *counts, intptr_t taps, intptr_t width, intptr_t out_width,
                   intptr_t rows, intptr_t ch, int precision_bits) {
    intptr_t lanes_rows = (ch == 3 || ch == 4) && rows > 1 ? rows - 1 : 0;
    const v4u half = (v4u){1, 1, 1, 1} << (precision_bits - 1);
    // RGB and RGBA: a pixel's channels in the four lanes of a vector. Each tap loads four bytes
    // (for RGB the fourth is the next pixel's, its lane dropped), so every row but the last.
    for (intptr_t y = 0; y < lanes_rows; y++) {
        const uint8_t *row = src + y * width * ch;
        uint8_t *out = dst + y * out_width * ch;
        for (intptr_t x = 0; x < out_width; x++) {
            const int32_t *k = kk + x * taps;
            const uint8_t *p = row + starts[x] * ch;
            v4u acc = half;
            for (intptr_t t = 0; t < counts[x]; t++) {
                v4b b;
                __builtin_memcpy(&b, p, 4);
                acc += __builtin_convertvector(b, v4u) * (v4u){(uint32_t)k[t], (uint32_t)k[t], (uint32_t)k[t], (uint32_t)k[t]};
                p += ch;
            }
            v4i v = (v4i)acc >> precision_bits;
            v &= ~(v >> 31);                       // negatives to 0
            v4i over = v > 255;
            v = (v & ~over) | (over & 255);        // above 255 to 255
            v4b bytes = __builtin_convertvector(v, v4b);
            if (ch == 4) {
                __builtin_memcpy(out, &bytes, 4);
            } else {
                out[0] = bytes[0]; out[1] = bytes[1]; out[2] = bytes[2];
            }
            out += ch;
        }
    }
    for (intptr_t y = lanes_rows; y < rows; y++) {
        h8_scalar(src + y * width * ch, dst + y * out_width * ch, kk, starts, counts, taps, out_width, ch, precision_bits);
    }
}

IMC_CLONES
void imc_resize_v8(const uint8_t *src, uint8_t *dst, const int32_t *kk, const intptr_t *starts,
                   const intptr_t *counts, intptr_t taps, intptr_t row_length, intptr_t out_height,
                   int precision_bits, int32_t *acc) {
    const int32_t half = (int32_t)1 << (precision_bits - 1);
    for (intptr_t y = 0; y < out_height; y++) {
        for (intptr_t i = 0; i < row_length; i++) acc[i] = half;
        const int32_t *k = kk + y * taps;
        for (intptr_t t = 0; t < counts[y]; t++) {
            const uint8_t *row = src + (starts[y] + t) * row_length;
            int32_t w = k[t];
            for (intptr_t i = 0; i < row_length; i++) acc[i] = wrap_madd(acc[i], row[i], w);
        }
        uint8_t *out = dst + y * row_length;
        for (intptr_t i = 0; i < row_length; i++) out[i] = clip8(acc[i], precision_bits);
    }
}

IMC_CLONES
void imc_luma8(const uint8_t *src, uint8_t *dst, intptr_t count, intptr_t stride) {
    // At most 255 * 65536 + 0x8000: the sums fit 32 bits.
    for (intptr_t i = 0; i < count; i++) {
        const uint8_t *p = src + i * stride;
        dst[i] = (uint8_t)(((uint32_t)p[0] * 19595u + (uint32_t)p[1] * 38470u + (uint32_t)p[2] * 7471u + 0x8000u) >> 16);
    }
}

IMC_CLONES
void imc_gray_expand8(const uint8_t *src, uint8_t *dst, intptr_t count, intptr_t out_channels) {
    if (out_channels == 3) {
        for (intptr_t i = 0; i < count; i++) { uint8_t v = src[i]; dst[3 * i] = v; dst[3 * i + 1] = v; dst[3 * i + 2] = v; }
    } else {
        for (intptr_t i = 0; i < count; i++) { uint8_t v = src[i]; dst[4 * i] = v; dst[4 * i + 1] = v; dst[4 * i + 2] = v; dst[4 * i + 3] = 255; }
    }
}
