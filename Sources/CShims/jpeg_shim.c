#include "imc_shims.h"
#include <stdio.h>
#include <jpeglib.h>
#include <jerror.h>
#include <setjmp.h>
#include <string.h>

// libjpeg's error manager longjmps out of the library; the jump target is in this file only.
typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char *err;
    size_t errlen;
    int allow_warnings;
    int warned;
} jpeg_errors;

static void on_error(j_common_ptr cinfo) {
    jpeg_errors *e = (jpeg_errors *)cinfo->err;
    char msg[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, msg);
    snprintf(e->err, e->errlen, "libjpeg: %s", msg);
    longjmp(e->jump, 1);
}

// Warnings (corrupt data that libjpeg recovers from) are errors for imgconv, as with TurboJPEG,
// except with allow_warnings: 1 accepts every warning, 2 only "extraneous bytes before marker"
// (stray bytes between segments: no pixel is missing, and Pillow, OpenCV and TensorFlow decode
// such files).
static void on_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    jpeg_errors *e = (jpeg_errors *)cinfo->err;
    int benign = cinfo->err->msg_code == JWRN_EXTRANEOUS_DATA;
    if (!e->allow_warnings || (e->allow_warnings == 2 && !benign)) {
        char msg[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(cinfo, msg);
        snprintf(e->err, e->errlen, "libjpeg: %s (damaged or truncated file; --allow-truncated-jpeg accepts it)", msg);
        longjmp(e->jump, 1);
    }
    if (!e->warned) {
        char msg[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(cinfo, msg);
        snprintf(e->err, e->errlen, "libjpeg: %s", msg);
        e->warned = 1;
    }
}

int imc_jpeg_decode(const uint8_t *data, size_t len, int info_only, int allow_warnings, uint8_t *dst,
                    size_t dst_len, imc_jpeg_info *info, char *err, size_t errlen) {
    struct jpeg_decompress_struct cinfo;
    jpeg_errors jerr;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&jerr.mgr);
    jerr.mgr.error_exit = on_error;
    jerr.mgr.emit_message = on_message;
    jerr.err = err;
    jerr.errlen = errlen;
    jerr.allow_warnings = allow_warnings;
    jerr.warned = 0;
    if (errlen) err[0] = 0;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    int components = cinfo.num_components;
    if (cinfo.jpeg_color_space == JCS_GRAYSCALE) {
        cinfo.out_color_space = JCS_GRAYSCALE;
    } else if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        cinfo.out_color_space = JCS_CMYK;
    } else {
        cinfo.out_color_space = JCS_RGB;
    }
    info->width = cinfo.image_width;
    info->height = cinfo.image_height;
    info->channels = cinfo.out_color_space == JCS_GRAYSCALE ? 1 : cinfo.out_color_space == JCS_CMYK ? 4 : 3;
    (void)components;
    if (info_only) {
        jpeg_destroy_decompress(&cinfo);
        return 0;
    }
    jpeg_start_decompress(&cinfo);
    size_t row = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    if ((size_t)cinfo.output_components != (size_t)info->channels ||
        (size_t)cinfo.output_height > dst_len / (row ? row : 1)) {
        snprintf(err, errlen, "libjpeg: output buffer does not match the image size");
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[1] = {dst + (size_t)cinfo.output_scanline * row};
        jpeg_read_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}
