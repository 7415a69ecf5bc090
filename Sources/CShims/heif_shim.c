// AVIF through libavif and HEIF (HEIC) through libheif. Both report errors as return values
// (avifResult, struct heif_error), never with longjmp; the shim keeps their objects out of Swift
// and turns their output into rows without padding.
#include "imc_shims.h"
#include <avif/avif.h>
#include <libheif/heif.h>
#include <stdio.h>
#include <math.h>
#include <string.h>

static void set_err(char *err, size_t errlen, const char *what, const char *detail) {
    if (!err || !errlen) return;
    if (detail && *detail) snprintf(err, errlen, "%s: %s", what, detail);
    else snprintf(err, errlen, "%s", what);
}

#include <dlfcn.h>
#include <pthread.h>

// libavif and libheif are opened (dlopen) when the first AVIF or HEIF file is read, not when
// imgconv starts. With the codecs they bring (dav1d, aom, rav1e, SVT-AV1, libgav1, libyuv, abseil;
// x265, libde265) they are about 20 of the binary's 90 libraries, and loading them at start cost
// every run about 7 ms of CPU before its first image, and more from a cold disk. The library
// found must be the ABI the headers here describe: its version is checked before use.
#define IMC_AVIF_FUNCTIONS(X) \
    X(avifVersion) X(avifDecoderCreate) X(avifDecoderDestroy) X(avifDecoderSetIOMemory) X(avifDecoderParse) \
    X(avifDecoderNextImage) X(avifResultToString) X(avifRGBImageSetDefaults) X(avifRGBImageAllocatePixels) \
    X(avifRGBImageFreePixels) X(avifImageYUVToRGB)
#define IMC_HEIF_FUNCTIONS(X) \
    X(heif_get_version_number_major) X(heif_get_version_number_minor) X(heif_context_alloc) \
    X(heif_context_free) X(heif_context_get_number_of_top_level_images) \
    X(heif_context_get_primary_image_handle) X(heif_context_read_from_memory_without_copy) \
    X(heif_decode_image) X(heif_image_get_bits_per_pixel_range) X(heif_image_get_chroma_format) \
    X(heif_image_get_height) X(heif_image_get_nclx_color_profile) X(heif_image_get_plane_readonly) \
    X(heif_image_get_width) X(heif_image_handle_get_height) X(heif_image_handle_get_luma_bits_per_pixel) \
    X(heif_image_handle_get_nclx_color_profile) X(heif_image_handle_get_width) \
    X(heif_image_handle_has_alpha_channel) X(heif_image_handle_release) X(heif_image_has_channel) \
    X(heif_image_release) X(heif_nclx_color_profile_free)
#define IMC_POINTER(name) __typeof__(name) *name;
static struct { IMC_AVIF_FUNCTIONS(IMC_POINTER) } avif;
static struct { IMC_HEIF_FUNCTIONS(IMC_POINTER) } heif;

static imc_lazy_library avif_library = {PTHREAD_ONCE_INIT, 0, ""};
static imc_lazy_library heif_library = {PTHREAD_ONCE_INIT, 0, ""};

#define IMC_RESOLVE(table, lib, handle, name)                                                          \
    if (!(table.name = (__typeof__(name) *)dlsym(handle, #name))) {                                    \
        snprintf(lib.error, sizeof lib.error, "the installed library has no %s", #name);              \
        return;                                                                                        \
    }
#define IMC_RESOLVE_AVIF(name) IMC_RESOLVE(avif, avif_library, h, name)
#define IMC_RESOLVE_HEIF(name) IMC_RESOLVE(heif, heif_library, h, name)

// libavif's structures are read directly: 0.x releases change them with every minor version,
// 1.x releases only append to them.
static int accept_avif(void *h, char *found, size_t found_len) {
    const char *(*version)(void) = (const char *(*)(void))dlsym(h, "avifVersion");
    unsigned major, minor;
    if (!version || sscanf(version(), "%u.%u", &major, &minor) != 2) return 0;
    snprintf(found, found_len, "%s", version());
    return major == AVIF_VERSION_MAJOR && (major == 0 ? minor == AVIF_VERSION_MINOR : minor >= AVIF_VERSION_MINOR);
}

static void load_avif(void) {
    static const char *const sonames[] = {"libavif.so.15", "libavif.so.16", "libavif.so"};
    void *h = imc_open_library(&avif_library, "Debian: libavif15", sonames, sizeof sonames / sizeof *sonames,
                               RTLD_NOW | RTLD_LOCAL, accept_avif);
    if (!h) return;
    IMC_AVIF_FUNCTIONS(IMC_RESOLVE_AVIF)
    avif_library.ok = 1;
}

// libheif's C API has opaque objects and is kept compatible through 1.x.
static int accept_heif(void *h, char *found, size_t found_len) {
    int (*major)(void) = (int (*)(void))dlsym(h, "heif_get_version_number_major");
    int (*minor)(void) = (int (*)(void))dlsym(h, "heif_get_version_number_minor");
    if (!major || !minor) return 0;
    snprintf(found, found_len, "%d.%d", major(), minor());
    return major() == (LIBHEIF_NUMERIC_VERSION >> 24) && minor() >= ((LIBHEIF_NUMERIC_VERSION >> 16) & 0xFF);
}

static void load_heif(void) {
    static const char *const sonames[] = {"libheif.so.1", "libheif.so"};
    void *h = imc_open_library(&heif_library, "Debian: libheif1", sonames, sizeof sonames / sizeof *sonames,
                               RTLD_NOW | RTLD_LOCAL, accept_heif);
    if (!h) return;
    IMC_HEIF_FUNCTIONS(IMC_RESOLVE_HEIF)
    heif_library.ok = 1;
}

void imc_heif_preload(void) {
    pthread_once(&avif_library.once, load_avif);
    pthread_once(&heif_library.once, load_heif);
}

// Whether the library is loaded; otherwise `err` says why not.
static int library_ready(imc_lazy_library *lib, void (*load)(void), const char *what, char *err, size_t errlen) {
    pthread_once(&lib->once, load);
    if (!lib->ok) set_err(err, errlen, what, lib->error);
    return lib->ok;
}

// Stores a sample of `bits` significant bits in the top bits of a 16-bit sample, as pillow-heif
// does for its I;16 images (1023 becomes 65472).
static inline uint16_t widen(uint16_t v, int bits) { return (uint16_t)(v << (16 - bits)); }

// ---------------------------------------------------------------------------------------------
// AVIF

// The EXIF orientation (1-8) equal to the item's rotation (irot: anticlockwise quarter turns)
// followed by its mirror (imir: 0 about the horizontal axis, 1 about the vertical one), which is
// how Pillow reports them.
static int avif_orientation(const avifImage *im) {
    int angle = (im->transformFlags & AVIF_TRANSFORM_IROT) ? (im->irot.angle & 3) : 0;
    if (!(im->transformFlags & AVIF_TRANSFORM_IMIR)) {
        static const int plain[4] = {1, 8, 3, 6};
        return plain[angle];
    }
    int leftRight = im->imir.mode & 1;
    static const int topBottom[4] = {4, 5, 2, 7};
    static const int sideways[4] = {2, 7, 4, 5};
    return leftRight ? sideways[angle] : topBottom[angle];
}

static avifDecoder *avif_open(const uint8_t *data, size_t len, uint32_t max_pixels, char *err, size_t errlen) {
    if (!library_ready(&avif_library, load_avif, "libavif", err, errlen)) return NULL;
    avifDecoder *d = avif.avifDecoderCreate();
    if (!d) { set_err(err, errlen, "libavif", "out of memory"); return NULL; }
    d->maxThreads = 1;
    // As Pillow: a missing pixi box or an invalid clap box is not an error (clap is not applied).
    d->strictFlags &= ~(avifStrictFlags)(AVIF_STRICT_CLAP_VALID | AVIF_STRICT_PIXI_REQUIRED);
    if (max_pixels && max_pixels < d->imageSizeLimit) d->imageSizeLimit = max_pixels;
    avifResult r = avif.avifDecoderSetIOMemory(d, data, len);
    if (r == AVIF_RESULT_OK) r = avif.avifDecoderParse(d);
    if (r != AVIF_RESULT_OK) {
        char what[96];
        snprintf(what, sizeof what, "%s", avif.avifResultToString(r));
        set_err(err, errlen, what, d->diag.error);
        avif.avifDecoderDestroy(d);
        return NULL;
    }
    return d;
}

static void avif_fill(const avifDecoder *d, imc_heif_info *info) {
    const avifImage *im = d->image;
    info->width = im->width;
    info->height = im->height;
    info->bit_depth = (int)im->depth;
    int gray = im->yuvFormat == AVIF_PIXEL_FORMAT_YUV400;
    info->channels = d->alphaPresent ? 4 : gray ? 1 : 3;
    info->orientation = avif_orientation(im);
    info->images = d->imageCount;
}

int imc_avif_read_info(const uint8_t *data, size_t len, uint32_t max_pixels, imc_heif_info *info,
                       char *err, size_t errlen) {
    avifDecoder *d = avif_open(data, len, max_pixels, err, errlen);
    if (!d) return -1;
    avif_fill(d, info);
    avif.avifDecoderDestroy(d);
    return 0;
}

int imc_avif_decode(const uint8_t *data, size_t len, uint32_t max_pixels, int out16, uint8_t *dst, size_t dst_len,
                    const imc_heif_info *expected, char *err, size_t errlen) {
    avifDecoder *d = avif_open(data, len, max_pixels, err, errlen);
    if (!d) return -1;
    imc_heif_info info;
    avif_fill(d, &info);
    int rc = -1;
    avifRGBImage rgb;
    memset(&rgb, 0, sizeof rgb);
    if (info.width != expected->width || info.height != expected->height || info.channels != expected->channels
        || info.bit_depth != expected->bit_depth) {
        set_err(err, errlen, "libavif", "image changed between header and decode");
        goto done;
    }
    avifResult r = avif.avifDecoderNextImage(d);
    if (r != AVIF_RESULT_OK) {
        set_err(err, errlen, avif.avifResultToString(r), d->diag.error);
        goto done;
    }
    const avifImage *im = d->image;
    if (im->width != info.width || im->height != info.height || (int)im->depth != info.bit_depth) {
        set_err(err, errlen, "libavif", "decoded image differs from its header");
        goto done;
    }
    int deep = out16 && info.bit_depth > 8;
    size_t sample = deep ? 2 : 1;
    size_t out_row = (size_t)info.width * (size_t)info.channels * sample;
    if (dst_len / out_row < info.height) { set_err(err, errlen, "libavif", "output buffer too small"); goto done; }
    avif.avifRGBImageSetDefaults(&rgb, im);
    // As Pillow: 8-bit RGB or RGBA with libavif's default (automatic) chroma upsampling; deeper
    // images at their own depth when out16 (Pillow narrows those to 8 bits, as here without out16).
    rgb.depth = deep ? (uint32_t)info.bit_depth : 8;
    rgb.format = info.channels == 4 ? AVIF_RGB_FORMAT_RGBA : AVIF_RGB_FORMAT_RGB;
    avif.avifRGBImageAllocatePixels(&rgb);
    if (!rgb.pixels) { set_err(err, errlen, "libavif", "out of memory"); goto done; }
    r = avif.avifImageYUVToRGB(im, &rgb);
    if (r != AVIF_RESULT_OK) { set_err(err, errlen, avif.avifResultToString(r), NULL); goto done; }
    int in_ch = info.channels == 4 ? 4 : 3;
    for (uint32_t y = 0; y < info.height; y++) {
        const uint8_t *row = rgb.pixels + (size_t)y * rgb.rowBytes;
        uint8_t *out = dst + (size_t)y * out_row;
        if (!deep) {
            if (info.channels == 1) {
                for (uint32_t x = 0; x < info.width; x++) out[x] = row[(size_t)x * 3];
            } else {
                memcpy(out, row, out_row);
            }
        } else {
            const uint16_t *row16 = (const uint16_t *)row;
            uint16_t *out16 = (uint16_t *)out;
            if (info.channels == 1) {
                for (uint32_t x = 0; x < info.width; x++) out16[x] = widen(row16[(size_t)x * 3], info.bit_depth);
            } else {
                size_t n = (size_t)info.width * (size_t)in_ch;
                for (size_t i = 0; i < n; i++) out16[i] = widen(row16[i], info.bit_depth);
            }
        }
    }
    rc = 0;
done:
    if (rgb.pixels) avif.avifRGBImageFreePixels(&rgb);
    avif.avifDecoderDestroy(d);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// HEIF

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static void heif_set_err(char *err, size_t errlen, struct heif_error e) {
    if (e.code == heif_error_Memory_allocation_error) set_err(err, errlen, "out of memory", e.message);
    else set_err(err, errlen, e.message && *e.message ? e.message : "error", NULL);
}

// A box inside [*off, end): its type and payload. Returns 0 when no (valid) box is left.
typedef struct { const uint8_t *type; size_t payload, payload_len, next; } box_t;

static int next_box(const uint8_t *d, size_t off, size_t end, box_t *b) {
    if (off > end || end - off < 8) return 0;
    uint64_t size = be32(d + off);
    size_t header = 8;
    if (size == 1) {
        if (end - off < 16) return 0;
        size = (uint64_t)be32(d + off + 8) << 32 | be32(d + off + 12);
        header = 16;
    } else if (size == 0) {
        size = end - off;
    }
    if (size < header || size > end - off) return 0;
    b->type = d + off + 4;
    b->payload = off + header;
    b->payload_len = (size_t)size - header;
    b->next = off + (size_t)size;
    return 1;
}

static int find_child(const uint8_t *d, size_t off, size_t end, const char *type, box_t *out) {
    box_t b;
    while (next_box(d, off, end, &b)) {
        if (memcmp(b.type, type, 4) == 0) { *out = b; return 1; }
        off = b.next;
    }
    return 0;
}

// Properties of ipco looked at (by 1-based index): enough for any real file, and a bound on the
// work a hostile one can ask for.
#define IMC_MAX_PROPERTIES 4096

// The chroma_format_idc (0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4) of every hvcC property of
// ipco, by index (-1 for other properties), in one pass.
static void property_chroma(const uint8_t *d, const box_t *ipco, signed char *chroma) {
    memset(chroma, -1, IMC_MAX_PROPERTIES);
    box_t b;
    size_t off = ipco->payload, end = ipco->payload + ipco->payload_len;
    for (int i = 1; i < IMC_MAX_PROPERTIES && next_box(d, off, end, &b); i++) {
        if (memcmp(b.type, "hvcC", 4) == 0 && b.payload_len >= 17) chroma[i] = (signed char)(d[b.payload + 16] & 3);
        off = b.next;
    }
}

// The chroma_format_idc of item `id`'s first hvcC property (ipma: payload of that box), or -1.
static int item_chroma(const uint8_t *d, const signed char *chroma, const box_t *ipma, uint32_t id) {
    size_t p = ipma->payload, end = ipma->payload + ipma->payload_len;
    if (end - p < 8) return -1;
    int version = d[p], wide = d[p + 3] & 1;
    uint32_t entries = be32(d + p + 4);
    p += 8;
    for (uint32_t e = 0; e < entries; e++) {
        size_t idlen = version < 1 ? 2 : 4;
        if (end - p < idlen + 1) return -1;
        uint32_t item = idlen == 2 ? (uint32_t)(d[p] << 8 | d[p + 1]) : be32(d + p);
        p += idlen;
        int count = d[p++];
        for (int a = 0; a < count; a++) {
            size_t alen = wide ? 2 : 1;
            if (end - p < alen) return -1;
            uint32_t index = wide ? (uint32_t)((d[p] & 0x7F) << 8 | d[p + 1]) : (uint32_t)(d[p] & 0x7F);
            p += alen;
            if (item == id && index < IMC_MAX_PROPERTIES && chroma[index] >= 0) return chroma[index];
        }
        if (item == id) return -1;
    }
    return -1;
}

// libheif 1.15 cannot say how an image is coded without decoding it, so the primary item's
// HEVC configuration (hvcC) is read from the meta box: its own, or for a grid (*grid set) its
// first tile's. -1 when there is none (not HEVC, or not found).
static int heif_primary_chroma(const uint8_t *d, size_t n, int *grid) {
    *grid = 0;
    box_t meta, pitm, iprp, ipco, ipma, iref;
    if (!find_child(d, 0, n, "meta", &meta) || meta.payload_len < 4) return -1;
    size_t mstart = meta.payload + 4, mend = meta.payload + meta.payload_len;
    if (!find_child(d, mstart, mend, "pitm", &pitm) || pitm.payload_len < 6) return -1;
    uint32_t primary = d[pitm.payload] == 0 ? (uint32_t)(d[pitm.payload + 4] << 8 | d[pitm.payload + 5])
                                            : (pitm.payload_len >= 8 ? be32(d + pitm.payload + 4) : 0);
    if (!find_child(d, mstart, mend, "iprp", &iprp)) return -1;
    if (!find_child(d, iprp.payload, iprp.payload + iprp.payload_len, "ipco", &ipco)) return -1;
    if (!find_child(d, iprp.payload, iprp.payload + iprp.payload_len, "ipma", &ipma)) return -1;
    signed char chroma[IMC_MAX_PROPERTIES];
    property_chroma(d, &ipco, chroma);
    int c = item_chroma(d, chroma, &ipma, primary);
    if (c >= 0) return c;
    // A derived image (grid): its first 'dimg' reference.
    *grid = 1;
    if (!find_child(d, mstart, mend, "iref", &iref) || iref.payload_len < 4) return -1;
    int wide = d[iref.payload] != 0;
    size_t off = iref.payload + 4, end = iref.payload + iref.payload_len;
    box_t r;
    while (next_box(d, off, end, &r)) {
        size_t idlen = wide ? 4 : 2, q = r.payload;
        if (memcmp(r.type, "dimg", 4) == 0 && r.payload_len >= 2 * idlen + 2) {
            uint32_t from = wide ? be32(d + q) : (uint32_t)(d[q] << 8 | d[q + 1]);
            uint32_t refs = (uint32_t)(d[q + idlen] << 8 | d[q + idlen + 1]);
            if (from == primary && refs > 0) {
                q += idlen + 2;
                uint32_t tile = wide ? be32(d + q) : (uint32_t)(d[q] << 8 | d[q + 1]);
                return item_chroma(d, chroma, &ipma, tile);
            }
        }
        off = r.next;
    }
    return -1;
}

// YCbCr to RGB the way libheif 1.16 and later convert 8-bit 4:2:0 with full-range samples
// (what pillow-heif uses; libheif 1.15 rounds differently): the nearest chroma sample, with
// the matrix's coefficients in 8.8 fixed point. Returns 0 when the image is not such a case.
typedef struct { int r_cr, g_cb, g_cr, b_cb; } fixed_coeffs;

static int fixed_coefficients(const struct heif_image *img, const struct heif_image_handle *h, fixed_coeffs *c) {
    struct heif_color_profile_nclx *nclx = NULL;
    if (heif.heif_image_get_nclx_color_profile(img, &nclx).code != heif_error_Ok) nclx = NULL;
    if (!nclx && heif.heif_image_handle_get_nclx_color_profile(h, &nclx).code != heif_error_Ok) nclx = NULL;
    int matrix = 2, full = 1;
    if (nclx) {
        matrix = nclx->matrix_coefficients;
        full = nclx->full_range_flag != 0;
        heif.heif_nclx_color_profile_free(nclx);
    }
    float kr, kb;
    switch (matrix) {
    case 1: kr = 0.2126f; kb = 0.0722f; break;           // BT.709
    case 2: case 5: case 6: kr = 0.299f; kb = 0.114f; break;  // unspecified (libheif's default), BT.601
    case 9: kr = 0.2627f; kb = 0.0593f; break;           // BT.2020 non-constant luminance
    default: return 0;
    }
    if (!full) return 0;
    float kg = 1.0f - kr - kb;
    c->r_cr = (int)lroundf(256 * (2 * (1 - kr)));
    c->b_cb = (int)lroundf(256 * (2 * (1 - kb)));
    c->g_cb = (int)lroundf(256 * (-2 * kb * (1 - kb) / kg));
    c->g_cr = (int)lroundf(256 * (-2 * kr * (1 - kr) / kg));
    return 1;
}

static inline uint8_t clamp8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

// A sample of plane p at (x, y), narrowed to 8 bits by dropping low bits (as libheif does before
// an 8-bit conversion).
static inline int sample8(const uint8_t *p, int stride, int x, int y, int shift) {
    if (shift == 0) return p[(size_t)y * (size_t)stride + (size_t)x];
    const uint8_t *q = p + (size_t)y * (size_t)stride + 2 * (size_t)x;
    return (q[0] | q[1] << 8) >> shift;
}

// 8-bit RGB(A) from 4:2:0 YCbCr planes with libheif's fixed-point conversion. Returns 1 when
// done, 0 when the image does not qualify (the caller falls back to libheif's conversion),
// -1 on error.
static int heif_fixed_420(const struct heif_image_handle *h, const imc_heif_info *info, uint8_t *dst,
                          char *err, size_t errlen) {
    struct heif_image *img = NULL;
    struct heif_error e = heif.heif_decode_image(h, &img, heif_colorspace_YCbCr, heif_chroma_420, NULL);
    if (e.code != heif_error_Ok) { heif_set_err(err, errlen, e); return -1; }
    int done = 0;
    fixed_coeffs c;
    int bits = heif.heif_image_get_bits_per_pixel_range(img, heif_channel_Y);
    int alpha = info->channels == 4;
    if (heif.heif_image_get_chroma_format(img) != heif_chroma_420 || bits != info->bit_depth
        || heif.heif_image_get_bits_per_pixel_range(img, heif_channel_Cb) != bits
        || heif.heif_image_get_bits_per_pixel_range(img, heif_channel_Cr) != bits
        || (alpha && (!heif.heif_image_has_channel(img, heif_channel_Alpha)
                      || heif.heif_image_get_bits_per_pixel_range(img, heif_channel_Alpha) != bits
                      || heif.heif_image_get_width(img, heif_channel_Alpha) != (int)info->width
                      || heif.heif_image_get_height(img, heif_channel_Alpha) != (int)info->height))
        || heif.heif_image_get_width(img, heif_channel_Y) != (int)info->width
        || heif.heif_image_get_height(img, heif_channel_Y) != (int)info->height
        || heif.heif_image_get_width(img, heif_channel_Cb) < ((int)info->width + 1) / 2
        || heif.heif_image_get_height(img, heif_channel_Cb) < ((int)info->height + 1) / 2
        || heif.heif_image_get_width(img, heif_channel_Cr) < ((int)info->width + 1) / 2
        || heif.heif_image_get_height(img, heif_channel_Cr) < ((int)info->height + 1) / 2
        || !fixed_coefficients(img, h, &c)) {
        heif.heif_image_release(img);
        return 0;
    }
    int sy, scb, scr, sa = 0;
    const uint8_t *py = heif.heif_image_get_plane_readonly(img, heif_channel_Y, &sy);
    const uint8_t *pcb = heif.heif_image_get_plane_readonly(img, heif_channel_Cb, &scb);
    const uint8_t *pcr = heif.heif_image_get_plane_readonly(img, heif_channel_Cr, &scr);
    const uint8_t *pa = alpha ? heif.heif_image_get_plane_readonly(img, heif_channel_Alpha, &sa) : NULL;
    if (!py || !pcb || !pcr || (alpha && !pa)) {
        set_err(err, errlen, "decoded image has no planes", NULL);
        heif.heif_image_release(img);
        return -1;
    }
    int shift = bits - 8, ch = info->channels;
    for (uint32_t y = 0; y < info->height; y++) {
        uint8_t *out = dst + (size_t)y * info->width * (size_t)ch;
        for (uint32_t x = 0; x < info->width; x++) {
            int yv = sample8(py, sy, (int)x, (int)y, shift);
            int cb = sample8(pcb, scb, (int)x / 2, (int)y / 2, shift) - 128;
            int cr = sample8(pcr, scr, (int)x / 2, (int)y / 2, shift) - 128;
            out[0] = clamp8(yv + ((c.r_cr * cr + 128) >> 8));
            out[1] = clamp8(yv + ((c.g_cb * cb + c.g_cr * cr + 128) >> 8));
            out[2] = clamp8(yv + ((c.b_cb * cb + 128) >> 8));
            if (alpha) out[3] = (uint8_t)sample8(pa, sa, (int)x, (int)y, shift);
            out += ch;
        }
    }
    done = 1;
    heif.heif_image_release(img);
    return done;
}

typedef struct {
    struct heif_context *ctx;
    struct heif_image_handle *handle;
    int fixed_420;  // 0 not 4:2:0, 1 a 4:2:0 grid, 2 a single 4:2:0 image
} heif_open_file;

static int heif_open(const uint8_t *data, size_t len, heif_open_file *f, imc_heif_info *info, char *err, size_t errlen) {
    f->ctx = NULL;
    f->handle = NULL;
    f->fixed_420 = 0;
    if (!library_ready(&heif_library, load_heif, "libheif", err, errlen)) return -1;
    f->ctx = heif.heif_context_alloc();
    if (!f->ctx) { set_err(err, errlen, "out of memory", NULL); return -1; }
    struct heif_error e = heif.heif_context_read_from_memory_without_copy(f->ctx, data, len, NULL);
    if (e.code == heif_error_Ok) e = heif.heif_context_get_primary_image_handle(f->ctx, &f->handle);
    if (e.code != heif_error_Ok) { heif_set_err(err, errlen, e); return -1; }
    int w = heif.heif_image_handle_get_width(f->handle), h = heif.heif_image_handle_get_height(f->handle);
    int bits = heif.heif_image_handle_get_luma_bits_per_pixel(f->handle);
    if (w <= 0 || h <= 0) { set_err(err, errlen, "image has no size", NULL); return -1; }
    if (bits < 1 || bits > 16) { set_err(err, errlen, "unsupported bit depth", NULL); return -1; }
    info->width = (uint32_t)w;
    info->height = (uint32_t)h;
    info->bit_depth = bits <= 8 ? 8 : bits;
    int alpha = heif.heif_image_handle_has_alpha_channel(f->handle);
    // As pillow-heif: gray with alpha becomes RGBA.
    int grid = 0, chroma = heif_primary_chroma(data, len, &grid);
    info->channels = alpha ? 4 : chroma == 0 ? 1 : 3;
    // Where libheif 1.16+ (pillow-heif's) takes its fixed-point 4:2:0 conversion: 10/12-bit
    // images narrowed to 8 bits; 8-bit ones when a single coded image without alpha (grids and
    // alpha go through its floating-point conversion, as libheif 1.15's does).
    f->fixed_420 = chroma == 1 ? (grid ? 1 : 2) : 0;
    info->orientation = 1;  // libheif applies irot, imir and clap itself
    info->images = heif.heif_context_get_number_of_top_level_images(f->ctx);
    return 0;
}

static void heif_close(heif_open_file *f) {
    if (f->handle) heif.heif_image_handle_release(f->handle);
    if (f->ctx) heif.heif_context_free(f->ctx);
}

int imc_heif_read_info(const uint8_t *data, size_t len, imc_heif_info *info, char *err, size_t errlen) {
    heif_open_file f;
    int rc = heif_open(data, len, &f, info, err, errlen);
    heif_close(&f);
    return rc;
}

// libheif's own conversion into interleaved rows (or the Y plane for gray).
static int heif_libheif_rgb(const struct heif_image_handle *h, const imc_heif_info *info, int deep, int gray_via_rgb,
                            uint8_t *dst, char *err, size_t errlen) {
    struct heif_image *img = NULL;
    int gray = info->channels == 1 && !gray_via_rgb;
    int alpha = info->channels == 4;
    enum heif_colorspace space = gray ? heif_colorspace_monochrome : heif_colorspace_RGB;
    enum heif_chroma chroma;
    enum heif_channel plane;
    if (gray) {
        chroma = heif_chroma_monochrome;
        plane = heif_channel_Y;
    } else {
        chroma = alpha ? (deep ? heif_chroma_interleaved_RRGGBBAA_LE : heif_chroma_interleaved_RGBA)
                       : (deep ? heif_chroma_interleaved_RRGGBB_LE : heif_chroma_interleaved_RGB);
        plane = heif_channel_interleaved;
    }
    struct heif_error e = heif.heif_decode_image(h, &img, space, chroma, NULL);
    if (e.code != heif_error_Ok) {
        // libheif 1.15 cannot turn 4:2:0 YCbCr into monochrome: gray images so coded go through
        // RGB (all three channels equal) and keep R.
        if (gray && e.code == heif_error_Unsupported_feature && e.subcode == heif_suberror_Unsupported_color_conversion)
            return heif_libheif_rgb(h, info, deep, 1, dst, err, errlen);
        heif_set_err(err, errlen, e);
        return -1;
    }
    int rc = -1, stride = 0;
    const uint8_t *p = heif.heif_image_get_plane_readonly(img, plane, &stride);
    int w = heif.heif_image_get_width(img, plane), hh = heif.heif_image_get_height(img, plane);
    int bits = heif.heif_image_get_bits_per_pixel_range(img, plane);
    size_t sample = deep ? 2 : 1;
    size_t in_px = (gray ? 1 : alpha ? 4 : 3) * sample;
    size_t out_row = (size_t)info->width * (size_t)info->channels * sample;
    if (!p || w != (int)info->width || hh != (int)info->height || (deep ? bits != info->bit_depth : bits != 8)
        || stride < 0 || (size_t)stride < (size_t)w * in_px) {
        set_err(err, errlen, "decoded image differs from its header", NULL);
        goto done;
    }
    for (uint32_t y = 0; y < info->height; y++) {
        const uint8_t *row = p + (size_t)y * (size_t)stride;
        uint8_t *out = dst + (size_t)y * out_row;
        if (!deep) {
            if (info->channels == 1 && gray_via_rgb) {
                for (uint32_t x = 0; x < info->width; x++) out[x] = row[(size_t)x * 3];
            } else {
                memcpy(out, row, out_row);
            }
        } else {
            // Little-endian 16-bit samples from libheif, host order out.
            uint16_t *out16 = (uint16_t *)out;
            size_t n = out_row / 2, step = (info->channels == 1 && gray_via_rgb) ? 3 : 1;
            for (size_t i = 0; i < n; i++) {
                const uint8_t *s = row + 2 * i * step;
                out16[i] = widen((uint16_t)(s[0] | s[1] << 8), info->bit_depth);
            }
        }
    }
    rc = 0;
done:
    heif.heif_image_release(img);
    return rc;
}

int imc_heif_decode(const uint8_t *data, size_t len, int out16, uint8_t *dst, size_t dst_len,
                    const imc_heif_info *expected, char *err, size_t errlen) {
    heif_open_file f;
    imc_heif_info info;
    int rc = -1;
    if (heif_open(data, len, &f, &info, err, errlen) != 0) goto done;
    if (info.width != expected->width || info.height != expected->height || info.channels != expected->channels
        || info.bit_depth != expected->bit_depth) {
        set_err(err, errlen, "image changed between header and decode", NULL);
        goto done;
    }
    // Gray 10/12-bit images stay 16-bit (pillow-heif reads them as I;16).
    int deep = (out16 || info.channels == 1) && info.bit_depth > 8;
    size_t need = (size_t)info.width * (size_t)info.channels * (deep ? 2 : 1);
    if (dst_len / need < info.height) { set_err(err, errlen, "output buffer too small", NULL); goto done; }
    if (!deep && (info.bit_depth > 8 ? f.fixed_420 > 0 : f.fixed_420 == 2 && info.channels == 3)) {
        int fixed = heif_fixed_420(f.handle, &info, dst, err, errlen);
        if (fixed < 0) goto done;
        if (fixed > 0) { rc = 0; goto done; }
    }
    rc = heif_libheif_rgb(f.handle, &info, deep, 0, dst, err, errlen);
done:
    heif_close(&f);
    return rc;
}
