#include "imc_shims.h"
#include "tiff_mem_io.h"

int imc_tiff_encode(const void *pixels, uint32_t width, uint32_t height, int channels, int bits, int sample_format,
                    uint8_t **out, size_t *out_len, char *err, size_t errlen) {
    if (channels < 1 || channels > 4 || width == 0 || height == 0 || (bits != 32 && bits != 64)
        || sample_format < SAMPLEFORMAT_UINT || sample_format > SAMPLEFORMAT_IEEEFP) {
        snprintf(err, errlen, "cannot write %d channels of %ux%u, %d-bit format %d, as TIFF", channels, width, height,
                 bits, sample_format);
        return -1;
    }
    size_t row = (size_t)width * (size_t)channels * (size_t)(bits / 8);
    imc_tiff_mem s = imc_tiff_mem_writing(err, errlen);
    // Classic TIFF has 32-bit offsets: BigTIFF ("8") only for data near 4 GiB.
    const char *mode = (uint64_t)row * height > ((uint64_t)0xF0000000u) ? "w8" : "w";
    TIFF *tif = imc_tiff_mem_open(&s, mode, 0);
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
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)bits);
    TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, (uint16_t)sample_format);
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
