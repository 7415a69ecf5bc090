#include "imc_shims.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
    char *err;
    size_t errlen;
} png_sink;

static void on_write_error(png_structp png, png_const_charp msg) {
    png_sink *sink = (png_sink *)png_get_error_ptr(png);
    if (sink && sink->err && sink->errlen) snprintf(sink->err, sink->errlen, "%s", msg);
    png_longjmp(png, 1);
}

static void on_write_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void write_bytes(png_structp png, png_bytep bytes, png_size_t n) {
    png_sink *sink = (png_sink *)png_get_io_ptr(png);
    if (n > sink->cap - sink->len) {
        size_t cap = sink->cap ? sink->cap : 4096;
        while (n > cap - sink->len) {
            if (cap > SIZE_MAX / 2) png_error(png, "PNG too large");
            cap *= 2;
        }
        uint8_t *grown = realloc(sink->data, cap);
        if (!grown) png_error(png, "out of memory");
        sink->data = grown;
        sink->cap = cap;
    }
    memcpy(sink->data + sink->len, bytes, n);
    sink->len += n;
}

static void flush_bytes(png_structp png) { (void)png; }

int imc_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels, int bit_depth,
                   int level, uint8_t **out, size_t *out_len, char *err, size_t errlen) {
    static const int types[5] = {-1, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    if (channels < 1 || channels > 4 || (bit_depth != 8 && bit_depth != 16)) {
        snprintf(err, errlen, "cannot write %d channels of %d bits as PNG", channels, bit_depth);
        return -1;
    }
    // volatile: read after a longjmp back into this frame.
    png_sink * volatile sink = calloc(1, sizeof(png_sink));
    if (!sink) { snprintf(err, errlen, "out of memory"); return -1; }
    sink->err = err;
    sink->errlen = errlen;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, sink, on_write_error, on_write_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        if (png) png_destroy_write_struct(&png, NULL);
        free(sink);
        snprintf(err, errlen, "libpng: cannot create a write struct");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(sink->data);
        free(sink);
        return -1;
    }
    png_set_write_fn(png, sink, write_bytes, flush_bytes);
    png_set_compression_level(png, level);
    png_set_IHDR(png, info, width, height, bit_depth, types[channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    if (bit_depth == 16) png_set_swap(png);  // PNG stores 16-bit samples big-endian; hosts here are LE
    size_t row = (size_t)width * (size_t)channels * (size_t)(bit_depth / 8);
    for (uint32_t y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + row * y));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out = sink->data;
    *out_len = sink->len;
    free(sink);
    return 0;
}

void imc_png_free(uint8_t *buffer) { free(buffer); }
