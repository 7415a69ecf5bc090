// C entry points for the two libraries Swift cannot drive directly:
// - libpng reports fatal errors with longjmp, which must never cross Swift frames, so the whole
//   create -> setjmp -> read -> destroy sequence lives in one C function per call.
// - libjpeg (the fallback under TurboJPEG) reports errors with longjmp too.
// - libtiff reads and writes tags through variadic functions (TIFFGetField, TIFFSetField), which
//   Swift cannot call, and its default handlers print to stderr; here each file gets its own
//   handlers that keep the message.
// Every function decodes from memory (or encodes into it), writes its reason into `err`
// (NUL-terminated) and returns 0 on success or -1 on failure.
#ifndef IMC_SHIMS_H
#define IMC_SHIMS_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

// A system library opened at first use (lazy_library.c).
typedef struct {
    pthread_once_t once;
    int ok;
    char error[200];
} imc_lazy_library;
// The first of `sonames` that dlopen opens (with `flags`) and whose version `accept` takes
// (`accept` writes the version it found into `found`); NULL otherwise, with the reason in
// lib->error: the version found, or dlopen's message for the first name (`package` says where
// the library comes from).
void *imc_open_library(imc_lazy_library *lib, const char *package, const char *const *sonames, size_t count,
                       int flags, int (*accept)(void *handle, char *found, size_t found_len));
// Opens libhdf5 of the release the headers describe into the global scope, once per process
// (the HDF5 thread calls it before any other HDF5 call, and main() under a memory limit): 0, or
// -1 with the reason in err.
int imc_h5_load(char *err, size_t errlen);

typedef struct {
    uint32_t width;
    uint32_t height;
    int color_type;      // as stored (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA)
    int bit_depth;       // as stored (1, 2, 4, 8, 16)
    int interlaced;
    int has_trns;
    // After the normalising transforms (palette/tRNS expanded, sub-byte gray widened):
    int out_channels;    // 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
    int out_bytes;       // 1 or 2 per sample (16-bit samples in host byte order)
} imc_png_info;

int imc_png_read_info(const uint8_t *data, size_t len, imc_png_info *info, char *err, size_t errlen);
int imc_png_decode(const uint8_t *data, size_t len, uint8_t *dst, size_t dst_len,
                   imc_png_info *info, char *err, size_t errlen);

// libpng's reader of one file, stopped after its header: a file read in one pass has its header
// read once, and its pixels decoded from where the header ended.
typedef struct imc_png_reader imc_png_reader;
// Reads the header as imc_png_read_info does and keeps the reader; NULL (reason in err) on error.
imc_png_reader *imc_png_open(const uint8_t *data, size_t len, imc_png_info *info, char *err, size_t errlen);
// Decodes the rest of the image as imc_png_decode does, from `data`: the whole file, which starts
// with the bytes the header was read from. Frees the reader, whatever the result.
int imc_png_finish(imc_png_reader *reader, const uint8_t *data, size_t len, uint8_t *dst, size_t dst_len,
                   imc_png_info *info, char *err, size_t errlen);
// Frees a reader that is not finished.
void imc_png_close(imc_png_reader *reader);

typedef struct {
    uint32_t width;
    uint32_t height;
    uint16_t samples_per_pixel;
    uint16_t bits_per_sample;
    uint16_t sample_format;   // 1 uint, 2 int, 3 float
    uint16_t photometric;     // 0 min-is-white, 1 min-is-black, 2 RGB, 3 palette, ...
    uint16_t planar;          // 1 contiguous, 2 separate
    uint16_t compression;
    uint16_t extra_samples;   // count of ExtraSamples
    uint16_t extra_kind;      // first ExtraSamples code (0 unspecified, 1 associated, 2 unassociated alpha)
    uint16_t orientation;     // TIFF Orientation tag (1 = top-left)
    uint16_t inkset;          // 1 = CMYK
    int tiled;
    int directories;          // number of pages
} imc_tiff_info;

// Information about directory `page` (0 = first).
int imc_tiff_read_info(const uint8_t *data, size_t len, int page, imc_tiff_info *info, char *err, size_t errlen);
// The same for a file read through its descriptor `fd` (of `len` bytes) with pread: only the
// header and the directories are read, wherever they lie.
int imc_tiff_read_info_fd(int fd, uint64_t len, int page, imc_tiff_info *info, char *err, size_t errlen);
// Decodes directory `page`'s raw samples, interleaved (H, W, samples_per_pixel), in host byte
// order, rows without padding. Samples of whole bytes (8/16/32/64 bits) are copied; others are
// unpacked (MSB first) into the smallest of 1, 2 or 4 bytes that holds them, values unscaled.
// JPEG-compressed YCbCr data is converted to RGB by libtiff.
int imc_tiff_decode(const uint8_t *data, size_t len, int page, uint8_t *dst, size_t dst_len,
                    char *err, size_t errlen);
// Directory `page` through libtiff's RGBA interface (TIFFReadRGBAImageOriented, top-left):
// 8-bit R, G, B, A per pixel (packed as host uint32 ABGR). For what the raw reads cannot give
// (old-style JPEG); dst holds width * height * 4 bytes.
int imc_tiff_decode_rgba(const uint8_t *data, size_t len, int page, uint8_t *dst, size_t dst_len,
                         char *err, size_t errlen);
// Palette of directory `page`: three arrays of `entries` (2^bits_per_sample) values.
int imc_tiff_colormap(const uint8_t *data, size_t len, int page, uint16_t *r, uint16_t *g, uint16_t *b,
                      size_t entries, char *err, size_t errlen);

typedef struct {
    uint32_t width;
    uint32_t height;
    int channels;  // 1 gray, 3 RGB, 4 CMYK (as stored, not inverted)
} imc_jpeg_info;

// The libjpeg API, for JPEGs whose sampling TurboJPEG 2.1 cannot name. With info_only, reads the
// header only. Same settings as TurboJPEG's defaults (accurate DCT, smooth upsampling).
// With allow_warnings, data errors libjpeg recovers from (a truncated file) are not failures.
int imc_jpeg_decode(const uint8_t *data, size_t len, int info_only, int allow_warnings, uint8_t *dst,
                    size_t dst_len, imc_jpeg_info *info, char *err, size_t errlen);

// PNG encoding (libpng's errors longjmp, so the whole write lives in one C function). Samples are
// interleaved rows without padding, 16-bit samples in host (little-endian) order. channels: 1 gray,
// 2 gray+alpha, 3 RGB, 4 RGBA; bit_depth 8 or 16; level 0-9. No time or text chunks, so the same
// pixels give the same bytes. On success *out (free with imc_png_free) holds *out_len bytes.
int imc_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels, int bit_depth,
                   int level, uint8_t **out, size_t *out_len, char *err, size_t errlen);
void imc_png_free(uint8_t *buffer);

// TIFF encoding of 32 or 64-bit samples (libtiff's client I/O into memory, with per-file error
// handlers: libtiff prints nothing). `pixels` holds `height` rows of `width` pixels of `channels`
// interleaved host-order samples of `bits` bits (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; alpha
// unassociated), no padding, of TIFF SampleFormat `sample_format` (1 unsigned, 2 signed, 3 IEEE
// float). Written contiguous, uncompressed, top-left, no time or software tags, so the same pixels
// give the same bytes. On success *out (free with imc_tiff_free) holds *out_len bytes.
int imc_tiff_encode(const void *pixels, uint32_t width, uint32_t height, int channels, int bits, int sample_format,
                    uint8_t **out, size_t *out_len, char *err, size_t errlen);
void imc_tiff_free(uint8_t *buffer);

// AVIF (libavif) and HEIF/HEIC (libheif), the primary image or first frame only.
typedef struct {
    uint32_t width;     // size as decoded (AVIF: stored, before `orientation`; HEIF: libheif applies irot/imir/clap)
    uint32_t height;
    int channels;       // 1 gray, 3 RGB, 4 RGBA (gray with alpha comes out as RGBA)
    int bit_depth;      // 8, or 10/12 (out as 16-bit samples in host order, value << (16 - bit_depth))
    int orientation;    // EXIF orientation still to apply (AVIF irot/imir as Pillow reports them); 1 for HEIF
    int images;         // AVIF frames, HEIF top-level images
} imc_heif_info;

// The header (container boxes only, no pixels decoded). max_pixels (0: libavif's default) is
// libavif's own limit.
int imc_avif_read_info(const uint8_t *data, size_t len, uint32_t max_pixels, imc_heif_info *info,
                       char *err, size_t errlen);
// Decodes into dst (height rows of width * channels samples) what imc_avif_read_info described.
// With out16 and bit_depth > 8, samples are 16-bit; otherwise 8-bit (narrowed as the reference
// readers narrow them).
int imc_avif_decode(const uint8_t *data, size_t len, uint32_t max_pixels, int out16, uint8_t *dst, size_t dst_len,
                    const imc_heif_info *expected, char *err, size_t errlen);
int imc_heif_read_info(const uint8_t *data, size_t len, imc_heif_info *info, char *err, size_t errlen);
// Opens libavif and libheif now rather than at the first AVIF or HEIF file (see heif_shim.c).
void imc_heif_preload(void);
int imc_heif_decode(const uint8_t *data, size_t len, int out16, uint8_t *dst, size_t dst_len,
                    const imc_heif_info *expected, char *err, size_t errlen);

#endif
