#include "imc_shims.h"
#include "tiff_mem_io.h"

static TIFF *open_memory(imc_tiff_mem *s) {
    // No single allocation inside libtiff may exceed 1 GiB, whatever a header claims.
    TIFF *tif = imc_tiff_mem_open(s, "rm", (tmsize_t)1 << 30);
    if (!tif && !s->has_error) snprintf(s->err, s->errlen, "cannot open TIFF");
    return tif;
}

static void fill_info(TIFF *tif, imc_tiff_info *info) {
    uint32_t u32 = 0;
    uint16_t u16 = 0;
    memset(info, 0, sizeof *info);
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &u32); info->width = u32;
    u32 = 0; TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &u32); info->height = u32;
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &u16); info->samples_per_pixel = u16;
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &u16); info->bits_per_sample = u16;
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &u16); info->sample_format = u16;
    u16 = 0xFFFF;
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &u16)) u16 = 0xFFFF;
    info->photometric = u16;
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &u16); info->planar = u16;
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &u16); info->compression = u16;
    uint16_t count = 0;
    uint16_t *kinds = NULL;
    if (TIFFGetField(tif, TIFFTAG_EXTRASAMPLES, &count, &kinds) && count > 0 && kinds) {
        info->extra_samples = count;
        info->extra_kind = kinds[0];
    }
    TIFFGetFieldDefaulted(tif, TIFFTAG_ORIENTATION, &u16); info->orientation = u16;
    u16 = 0; TIFFGetFieldDefaulted(tif, TIFFTAG_INKSET, &u16); info->inkset = u16;
    info->tiled = TIFFIsTiled(tif);
    info->directories = TIFFNumberOfDirectories(tif);
}

// Opens the file at directory `page`.
static TIFF *open_page(imc_tiff_mem *s, int page) {
    TIFF *tif = open_memory(s);
    if (!tif) return NULL;
    if (page > 0 && !TIFFSetDirectory(tif, (tdir_t)page)) {
        if (!s->has_error) snprintf(s->err, s->errlen, "cannot read page %d", page);
        TIFFClose(tif);
        return NULL;
    }
    return tif;
}

int imc_tiff_read_info(const uint8_t *data, size_t len, int page, imc_tiff_info *info, char *err, size_t errlen) {
    imc_tiff_mem s = imc_tiff_mem_reading(data, len, err, errlen);
    TIFF *tif = open_page(&s, page);
    if (!tif) return -1;
    fill_info(tif, info);
    TIFFClose(tif);
    if (s.has_error) return -1;
    return 0;
}

int imc_tiff_read_info_fd(int fd, uint64_t len, int page, imc_tiff_info *info, char *err, size_t errlen) {
    imc_tiff_mem s = imc_tiff_mem_file(fd, (size_t)len, err, errlen);
    TIFF *tif = open_page(&s, page);
    if (!tif) return -1;
    fill_info(tif, info);
    TIFFClose(tif);
    if (s.has_error) return -1;
    return 0;
}

// Bytes one unpacked sample of `bits` takes.
static size_t sample_bytes(unsigned bits) {
    return bits <= 8 ? 1 : bits <= 16 ? 2 : bits <= 32 ? 4 : 8;
}

// Bytes of one stored row of `n` samples of `bits` (rows are padded to whole bytes).
static size_t row_bytes(size_t n, unsigned bits) { return (n * bits + 7) / 8; }

// Sample `k` of a packed row, MSB first.
static uint32_t packed_sample(const uint8_t *row, size_t k, unsigned bits) {
    size_t bit = k * bits;
    uint32_t v = 0;
    for (unsigned i = 0; i < bits; i++, bit++)
        v = (v << 1) | ((row[bit >> 3] >> (7 - (bit & 7))) & 1u);
    return v;
}

// Copies one decoded block (strip or tile) of `bw` x `bh` pixels, `nsamp` interleaved samples of
// `bits` each, into the interleaved destination at (x0, y0), clipping to the image, writing sample
// plane `plane` when `nsamp` == 1 and the image is planar-separate.
static void place_block(const uint8_t *block, uint32_t bw, uint32_t bh, uint32_t x0, uint32_t y0,
                        uint32_t width, uint32_t height, size_t spp, unsigned bits, size_t nsamp,
                        size_t plane, uint8_t *dst) {
    size_t sb = sample_bytes(bits);
    size_t pixel = spp * sb;
    size_t stride = row_bytes((size_t)bw * nsamp, bits);
    uint32_t cols = x0 + bw <= width ? bw : width - x0;
    for (uint32_t y = 0; y < bh && y0 + y < height; y++) {
        const uint8_t *row = block + (size_t)y * stride;
        uint8_t *out = dst + ((size_t)(y0 + y) * width + x0) * pixel;
        if (bits == 8 * sb) {
            if (nsamp == spp) {
                memcpy(out, row, (size_t)cols * pixel);
            } else {
                for (uint32_t x = 0; x < cols; x++)
                    memcpy(out + x * pixel + plane * sb, row + (size_t)x * sb, sb);
            }
            continue;
        }
        for (uint32_t x = 0; x < cols; x++) {
            for (size_t c = 0; c < nsamp; c++) {
                // Samples of other widths (24-bit too) come as a big-endian bit stream.
                uint32_t v = packed_sample(row, (size_t)x * nsamp + c, bits);
                uint8_t *o = out + x * pixel + (nsamp == spp ? c : plane) * sb;
                if (sb == 1) *o = (uint8_t)v;
                else if (sb == 2) { uint16_t w = (uint16_t)v; memcpy(o, &w, 2); }
                else memcpy(o, &v, 4);
            }
        }
    }
}

int imc_tiff_decode(const uint8_t *data, size_t len, int page, uint8_t *dst, size_t dst_len,
                    char *err, size_t errlen) {
    imc_tiff_mem s = imc_tiff_mem_reading(data, len, err, errlen);
    TIFF *tif = open_page(&s, page);
    if (!tif) return -1;
    imc_tiff_info info;
    fill_info(tif, &info);
    int rc = -1;
    uint8_t *block = NULL;
    unsigned bits = info.bits_per_sample;
    size_t spp = info.samples_per_pixel;
    if (bits == 0 || bits > 64 || (bits > 32 && bits != 64) || spp == 0) {
        snprintf(err, errlen, "unsupported %u-bit samples", bits);
        goto done;
    }
    if (info.compression == COMPRESSION_JPEG && info.photometric == PHOTOMETRIC_YCBCR) {
        // libtiff's JPEG codec converts YCbCr to RGB itself in this mode.
        TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    }
    size_t bps = sample_bytes(bits);
    if ((size_t)info.width * info.height * spp * bps > dst_len) {
        snprintf(err, errlen, "output buffer does not match the image size");
        goto done;
    }
    int separate = info.planar == PLANARCONFIG_SEPARATE && spp > 1;
    size_t nsamp = separate ? 1 : spp;
    size_t planes = separate ? spp : 1;
    if (info.tiled) {
        uint32_t tw = 0, th = 0;
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
        tmsize_t tsize = TIFFTileSize(tif);
        if (tw == 0 || th == 0 || tsize <= 0 || (size_t)tsize < (size_t)th * row_bytes((size_t)tw * nsamp, bits)) {
            if (!s.has_error) snprintf(err, errlen, "invalid tile size");
            goto done;
        }
        // A tile may be larger than a small image (256x256 tiles for a 10x10 image), but not
        // without bound: a header can claim tiles of gigabytes for an image of a few pixels.
        if ((size_t)tsize > dst_len && (size_t)tsize > ((size_t)64 << 20)) {
            snprintf(err, errlen, "tiles of %ux%u are far larger than the %ux%u image", tw, th, info.width, info.height);
            goto done;
        }
        block = (uint8_t *)malloc((size_t)tsize);
        if (!block) { snprintf(err, errlen, "out of memory"); goto done; }
        for (size_t p = 0; p < planes; p++)
            for (uint32_t y = 0; y < info.height; y += th)
                for (uint32_t x = 0; x < info.width; x += tw) {
                    ttile_t t = TIFFComputeTile(tif, x, y, 0, (uint16_t)p);
                    if (TIFFReadEncodedTile(tif, t, block, tsize) < 0) {
                        if (!s.has_error) snprintf(err, errlen, "cannot read tile %u", (unsigned)t);
                        goto done;
                    }
                    place_block(block, tw, th, x, y, info.width, info.height, spp, bits, nsamp, p, dst);
                }
    } else {
        uint32_t rps = 0;
        TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
        if (rps == 0 || rps > info.height) rps = info.height;
        tmsize_t ssize = TIFFStripSize(tif);
        if (ssize <= 0) { if (!s.has_error) snprintf(err, errlen, "invalid strip size"); goto done; }
        block = (uint8_t *)malloc((size_t)ssize);
        if (!block) { snprintf(err, errlen, "out of memory"); goto done; }
        for (size_t p = 0; p < planes; p++)
            for (uint32_t y = 0; y < info.height; y += rps) {
                tstrip_t st = TIFFComputeStrip(tif, y, (uint16_t)p);
                uint32_t rows = y + rps <= info.height ? rps : info.height - y;
                size_t need = (size_t)rows * row_bytes((size_t)info.width * nsamp, bits);
                tmsize_t got = TIFFReadEncodedStrip(tif, st, block, ssize);
                if (got < 0 || (size_t)got < need) {
                    if (!s.has_error) snprintf(err, errlen, "cannot read strip %u", (unsigned)st);
                    goto done;
                }
                place_block(block, info.width, rows, 0, y, info.width, info.height, spp, bits, nsamp, p, dst);
            }
    }
    rc = s.has_error ? -1 : 0;
done:
    free(block);
    TIFFClose(tif);
    return rc;
}

int imc_tiff_colormap(const uint8_t *data, size_t len, int page, uint16_t *r, uint16_t *g, uint16_t *b,
                      size_t entries, char *err, size_t errlen) {
    imc_tiff_mem s = imc_tiff_mem_reading(data, len, err, errlen);
    TIFF *tif = open_page(&s, page);
    if (!tif) return -1;
    uint16_t *cr = NULL, *cg = NULL, *cb = NULL;
    int rc = -1;
    if (TIFFGetField(tif, TIFFTAG_COLORMAP, &cr, &cg, &cb) && cr && cg && cb) {
        memcpy(r, cr, entries * sizeof(uint16_t));
        memcpy(g, cg, entries * sizeof(uint16_t));
        memcpy(b, cb, entries * sizeof(uint16_t));
        rc = 0;
    } else if (!s.has_error) {
        snprintf(err, errlen, "palette image without a colormap");
    }
    TIFFClose(tif);
    return rc;
}

int imc_tiff_decode_rgba(const uint8_t *data, size_t len, int page, uint8_t *dst, size_t dst_len,
                         char *err, size_t errlen) {
    imc_tiff_mem s = imc_tiff_mem_reading(data, len, err, errlen);
    TIFF *tif = open_page(&s, page);
    if (!tif) return -1;
    imc_tiff_info info;
    fill_info(tif, &info);
    int rc = -1;
    size_t pixels = (size_t)info.width * info.height;
    if (pixels == 0 || pixels > dst_len / 4) {
        snprintf(err, errlen, "output buffer does not match the image size");
    } else if (TIFFReadRGBAImageOriented(tif, info.width, info.height, (uint32_t *)(void *)dst,
                                         ORIENTATION_TOPLEFT, 0) && !s.has_error) {
        rc = 0;
    } else if (!s.has_error) {
        snprintf(err, errlen, "cannot read the image through libtiff's RGBA interface");
    }
    TIFFClose(tif);
    return rc;
}
