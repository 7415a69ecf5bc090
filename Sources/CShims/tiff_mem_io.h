// A TIFF in memory for libtiff's client I/O, shared by the reader (tiff_shim.c: the caller's
// bytes, never written) and the writer (tiff_write_shim.c: a growing buffer with a position;
// libtiff seeks back to patch offsets and may read back what it wrote). libtiff's messages go
// to per-file handlers that keep the first error and print nothing.
#ifndef IMC_TIFF_MEM_IO_H
#define IMC_TIFF_MEM_IO_H

#include <tiffio.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

typedef struct {
    uint8_t *data;
    size_t len;      // bytes that exist
    size_t cap;      // writable buffers: bytes allocated
    uint64_t pos;
    int writable;    // 0: the caller's bytes, read only (never written or freed)
    int failed;      // an allocation failed: every later write fails too
    char *err;
    size_t errlen;
    int has_error;
    int fd;          // >= 0: read from this descriptor with pread (data is unused), never mapped
} imc_tiff_mem;

static inline imc_tiff_mem imc_tiff_mem_reading(const uint8_t *data, size_t len, char *err, size_t errlen) {
    imc_tiff_mem m = {(uint8_t *)data, len, len, 0, 0, 0, err, errlen, 0, -1};
    return m;
}

static inline imc_tiff_mem imc_tiff_mem_writing(char *err, size_t errlen) {
    imc_tiff_mem m = {NULL, 0, 0, 0, 1, 0, err, errlen, 0, -1};
    return m;
}

// A file of `len` bytes read through its descriptor: libtiff reads only the parts it needs.
static inline imc_tiff_mem imc_tiff_mem_file(int fd, size_t len, char *err, size_t errlen) {
    imc_tiff_mem m = {NULL, len, len, 0, 0, 0, err, errlen, 0, fd};
    return m;
}

static tmsize_t imc_tiff_mem_read(thandle_t h, void *buf, tmsize_t n) {
    imc_tiff_mem *s = (imc_tiff_mem *)h;
    if (n < 0 || s->pos >= s->len) return 0;
    uint64_t left = s->len - s->pos;
    uint64_t take = (uint64_t)n < left ? (uint64_t)n : left;
    if (s->fd >= 0) {
        size_t done = 0;
        while (done < take) {
            ssize_t got = pread(s->fd, (uint8_t *)buf + done, (size_t)take - done, (off_t)(s->pos + done));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) break;
            done += (size_t)got;
        }
        s->pos += done;
        return (tmsize_t)done;
    }
    memcpy(buf, s->data + s->pos, (size_t)take);
    s->pos += take;
    return (tmsize_t)take;
}

static tmsize_t imc_tiff_mem_write(thandle_t h, void *buf, tmsize_t n) {
    imc_tiff_mem *s = (imc_tiff_mem *)h;
    if (!s->writable || n < 0 || s->failed) return -1;
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

static toff_t imc_tiff_mem_seek(thandle_t h, toff_t off, int whence) {
    imc_tiff_mem *s = (imc_tiff_mem *)h;
    uint64_t base = whence == SEEK_CUR ? s->pos : whence == SEEK_END ? s->len : 0;
    s->pos = base + off;
    return s->pos;
}
static int imc_tiff_mem_close(thandle_t h) { (void)h; return 0; }
static toff_t imc_tiff_mem_size(thandle_t h) { return ((imc_tiff_mem *)h)->len; }
// Read-only bytes are handed to libtiff as a mapping; a buffer being written is not.
static int imc_tiff_mem_map(thandle_t h, void **base, toff_t *size) {
    imc_tiff_mem *s = (imc_tiff_mem *)h;
    if (s->writable || s->fd >= 0) return 0;
    *base = (void *)s->data;
    *size = s->len;
    return 1;
}
static void imc_tiff_mem_unmap(thandle_t h, void *base, toff_t size) { (void)h; (void)base; (void)size; }

// The first error is the most specific one; later ones ("... failed") only repeat it.
static int imc_tiff_mem_on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif;
    imc_tiff_mem *s = (imc_tiff_mem *)user;
    if (!s->has_error && s->err && s->errlen) {
        char msg[512];
        vsnprintf(msg, sizeof msg, fmt, ap);
        snprintf(s->err, s->errlen, "%s%s%s", module ? module : "", module ? ": " : "", msg);
    }
    s->has_error = 1;
    return 1;  // handled: libtiff's global handler (stderr) is not called
}
static int imc_tiff_mem_on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif; (void)user; (void)module; (void)fmt; (void)ap;
    return 1;
}

// Opens `s` with libtiff in `mode` ("rm", "w", "w8") with the handlers above; `max_alloc` > 0
// caps any single allocation inside libtiff. NULL (with s->err set) when it cannot.
static TIFF *imc_tiff_mem_open(imc_tiff_mem *s, const char *mode, tmsize_t max_alloc) {
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) { snprintf(s->err, s->errlen, "out of memory"); return NULL; }
    TIFFOpenOptionsSetErrorHandlerExtR(opts, imc_tiff_mem_on_error, s);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, imc_tiff_mem_on_warning, s);
    if (max_alloc > 0) TIFFOpenOptionsSetMaxSingleMemAlloc(opts, max_alloc);
    TIFF *tif = TIFFClientOpenExt("memory", mode, (thandle_t)s, imc_tiff_mem_read, imc_tiff_mem_write,
                                  imc_tiff_mem_seek, imc_tiff_mem_close, imc_tiff_mem_size,
                                  imc_tiff_mem_map, imc_tiff_mem_unmap, opts);
    TIFFOpenOptionsFree(opts);
    return tif;
}

#endif
