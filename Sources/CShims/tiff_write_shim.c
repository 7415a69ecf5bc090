#include "imc_shims.h"
#include <tiffio.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// A TIFF written into memory through libtiff's client I/O: a growing buffer with a position
// (libtiff seeks back to patch offsets, and may read back what it wrote).
typedef struct {
    uint8_t *data;
    size_t len;   // bytes that exist
    size_t cap;
    uint64_t pos;
    int failed;   // an allocation failed: every later write fails too
    char *err;
    size_t errlen;
    int has_error;
} tiff_sink;

static tmsize_t sink_read(thandle_t h, void *buf, tmsize_t n) {
    tiff_sink *s = (tiff_sink *)h;
    if (n < 0 || s->pos >= s->len) return 0;
    uint64_t left = s->len - s->pos;
    uint64_t take = (uint64_t)n < left ? (uint64_t)n : left;
    memcpy(buf, s->data + s->pos, (size_t)take);
    s->pos += take;
    return (tmsize_t)take;
}

static tmsize_t sink_write(thandle_t h, void *buf, tmsize_t n) {
    tiff_sink *s = (tiff_sink *)h;
    if (n < 0 || s->failed) return -1;
    if (s->pos > SIZE_MAX - (uint64_t)n) { s->failed = 1; return -1; }
    size_t end = (size_t)s->pos + (size_t)n;
    if (end > s->cap) {
        size_t cap = s->cap ? s->cap : 65536;
        while (cap < end) {
            if (cap > SIZE_MAX / 2) { s->failed = 1; return -1; }
            cap *= 2;
        }
        uint8_t *grown = realloc(s->data, cap);
        if (!grown) { s->failed = 1; return -1; }
        s->data = grown;
        s->cap = cap;
    }
    // A seek past the end leaves a gap: zero it, as a file would read.
    if (s->pos > s->len) memset(s->data + s->len, 0, (size_t)s->pos - s->len);
    memcpy(s->data + s->pos, buf, (size_t)n);
    s->pos = end;
    if (end > s->len) s->len = end;
    return n;
}

static toff_t sink_seek(thandle_t h, toff_t off, int whence) {
    tiff_sink *s = (tiff_sink *)h;
    uint64_t base = whence == SEEK_CUR ? s->pos : whence == SEEK_END ? s->len : 0;
    s->pos = base + off;
    return s->pos;
}
static int sink_close(thandle_t h) { (void)h; return 0; }
static toff_t sink_size(thandle_t h) { return ((tiff_sink *)h)->len; }
static int sink_map(thandle_t h, void **base, toff_t *size) { (void)h; (void)base; (void)size; return 0; }
static void sink_unmap(thandle_t h, void *base, toff_t size) { (void)h; (void)base; (void)size; }

// As the reader's handlers: the first message is kept, nothing reaches libtiff's global
// handlers (which print to stderr).
static int sink_on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif;
    tiff_sink *s = (tiff_sink *)user;
    if (!s->has_error && s->err && s->errlen) {
        char msg[512];
        vsnprintf(msg, sizeof msg, fmt, ap);
        snprintf(s->err, s->errlen, "%s%s%s", module ? module : "", module ? ": " : "", msg);
    }
    s->has_error = 1;
    return 1;
}
static int sink_on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif; (void)user; (void)module; (void)fmt; (void)ap;
    return 1;
}

int imc_tiff_encode_float(const float *pixels, uint32_t width, uint32_t height, int channels,
                          uint8_t **out, size_t *out_len, char *err, size_t errlen) {
    if (channels < 1 || channels > 4 || width == 0 || height == 0) {
        snprintf(err, errlen, "cannot write %d channels of %ux%u as TIFF", channels, width, height);
        return -1;
    }
    size_t row = (size_t)width * (size_t)channels * sizeof(float);
    tiff_sink s = {NULL, 0, 0, 0, 0, err, errlen, 0};
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) { snprintf(err, errlen, "out of memory"); return -1; }
    TIFFOpenOptionsSetErrorHandlerExtR(opts, sink_on_error, &s);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, sink_on_warning, &s);
    // Classic TIFF has 32-bit offsets: BigTIFF ("8") only for data near 4 GiB.
    const char *mode = (uint64_t)row * height > ((uint64_t)0xF0000000u) ? "w8" : "w";
    TIFF *tif = TIFFClientOpenExt("memory", mode, (thandle_t)&s, sink_read, sink_write, sink_seek,
                                  sink_close, sink_size, sink_map, sink_unmap, opts);
    TIFFOpenOptionsFree(opts);
    if (!tif) {
        if (!s.has_error) snprintf(err, errlen, "cannot create a TIFF");
        free(s.data);
        return -1;
    }
    int rc = -1;
    uint8_t *strip = NULL;
    uint16_t alpha[1] = {EXTRASAMPLE_UNASSALPHA};
    int color = channels >= 3;
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, width);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, height);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)channels);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)32);
    TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, (uint16_t)SAMPLEFORMAT_IEEEFP);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, (uint16_t)(color ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK));
    // 2 (gray + alpha) and 4 (RGB + alpha) channels: the last sample is unassociated alpha.
    if (channels == 2 || channels == 4) TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, (uint16_t)1, alpha);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, (uint16_t)PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, (uint16_t)COMPRESSION_NONE);
    TIFFSetField(tif, TIFFTAG_ORIENTATION, (uint16_t)ORIENTATION_TOPLEFT);
    uint32_t rows_per_strip = TIFFDefaultStripSize(tif, 0);
    if (rows_per_strip == 0 || rows_per_strip > height) rows_per_strip = height;
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rows_per_strip);
    if (s.has_error) goto done;
    // libtiff may byte-swap or otherwise touch the buffer it is given: hand it a copy.
    strip = malloc(row * rows_per_strip);
    if (!strip) { snprintf(err, errlen, "out of memory"); goto done; }
    for (uint32_t y = 0, k = 0; y < height; y += rows_per_strip, k++) {
        uint32_t rows = height - y < rows_per_strip ? height - y : rows_per_strip;
        memcpy(strip, (const uint8_t *)pixels + row * y, row * rows);
        if (TIFFWriteEncodedStrip(tif, k, strip, (tmsize_t)(row * rows)) < 0 || s.failed) {
            if (!s.has_error) snprintf(err, errlen, s.failed ? "out of memory" : "cannot write strip %u", k);
            goto done;
        }
    }
    if (!TIFFWriteDirectory(tif) || s.failed) {
        if (!s.has_error) snprintf(err, errlen, s.failed ? "out of memory" : "cannot write the TIFF directory");
        goto done;
    }
    rc = s.has_error ? -1 : 0;
done:
    free(strip);
    TIFFClose(tif);
    if (rc == 0 && (s.failed || s.has_error)) {
        if (!s.has_error) snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    if (rc != 0) {
        free(s.data);
        return -1;
    }
    *out = s.data;
    *out_len = s.len;
    return 0;
}

void imc_tiff_free(uint8_t *buffer) { free(buffer); }
