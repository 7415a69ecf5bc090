#include "imc_shims.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *data;
    size_t len;
    size_t pos;
    char *err;
    size_t errlen;
} png_source;

static void on_error(png_structp png, png_const_charp msg) {
    png_source *src = (png_source *)png_get_error_ptr(png);
    if (src && src->err && src->errlen) snprintf(src->err, src->errlen, "%s", msg);
    png_longjmp(png, 1);
}

// Warnings (e.g. a CRC error in an ancillary chunk, which libpng drops) are not failures; libpng's
// default handler would print them, so they are swallowed here.
static void on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void read_bytes(png_structp png, png_bytep out, png_size_t n) {
    png_source *src = (png_source *)png_get_io_ptr(png);
    if (n > src->len - src->pos) png_error(png, "Read Error: file is truncated");
    memcpy(out, src->data + src->pos, n);
    src->pos += n;
}

// Reads the header and fills `info` from it, out_channels and out_bytes as the normalising
// transforms will give them (the transforms are set up only for a decode: that starts libpng's
// inflate stream and allocates its row buffers).
static void read_header(png_structp png, png_infop pinfo, imc_png_info *info) {
    png_read_info(png, pinfo);
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, pinfo, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    info->width = w;
    info->height = h;
    info->color_type = ctype;
    info->bit_depth = depth;
    info->interlaced = interlace != PNG_INTERLACE_NONE;
    info->has_trns = png_get_valid(png, pinfo, PNG_INFO_tRNS) != 0;
    int channels = ctype == PNG_COLOR_TYPE_GRAY ? 1 : ctype == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                 : ctype == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : 3;  // RGB, or a palette's RGB
    // tRNS becomes an alpha channel; libpng keeps no tRNS for types that have alpha.
    if (info->has_trns && channels != 2 && channels != 4) channels += 1;
    info->out_channels = channels;
    info->out_bytes = depth == 16 ? 2 : 1;
}

static png_structp create(png_source *src, png_infop *pinfo) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, src, on_error, on_warning);
    if (!png) return NULL;
    *pinfo = png_create_info_struct(png);
    if (!*pinfo) { png_destroy_read_struct(&png, NULL, NULL); return NULL; }
    png_set_read_fn(png, src, read_bytes);
    // Bound what a crafted file can make libpng allocate for ancillary chunks.
    png_set_chunk_malloc_max(png, 8u * 1024u * 1024u);
    png_set_user_limits(png, 1000000, 1000000);
    return png;
}

struct imc_png_reader {
    png_source src;      // libpng's io pointer: stays at this address
    png_structp png;
    png_infop pinfo;
    imc_png_info header; // as read_header gave it
};

imc_png_reader *imc_png_open(const uint8_t *data, size_t len, imc_png_info *info, char *err, size_t errlen) {
    if (len < 8 || png_sig_cmp(data, 0, 8) != 0) { snprintf(err, errlen, "not a PNG signature"); return NULL; }
    imc_png_reader *r = calloc(1, sizeof *r);
    if (!r) { snprintf(err, errlen, "out of memory"); return NULL; }
    r->src = (png_source){data, len, 0, err, errlen};
    r->png = create(&r->src, &r->pinfo);
    if (!r->png) { free(r); snprintf(err, errlen, "out of memory"); return NULL; }
    if (setjmp(png_jmpbuf(r->png))) { imc_png_close(r); return NULL; }
    read_header(r->png, r->pinfo, &r->header);
    *info = r->header;
    return r;
}

void imc_png_close(imc_png_reader *r) {
    if (!r) return;
    png_destroy_read_struct(&r->png, &r->pinfo, NULL);
    free(r);
}

int imc_png_finish(imc_png_reader *r, const uint8_t *data, size_t len, uint8_t *dst, size_t dst_len,
                   imc_png_info *info, char *err, size_t errlen) {
    // Allocated before setjmp and only freed after it, so no local changed after setjmp is read
    // after a longjmp.
    png_bytepp volatile rows = NULL;
    png_structp png = r->png;
    png_infop pinfo = r->pinfo;
    if (len < r->src.pos) { imc_png_close(r); snprintf(err, errlen, "file is shorter than its header"); return -1; }
    r->src.data = data;
    r->src.len = len;
    r->src.err = err;
    r->src.errlen = errlen;
    if (setjmp(png_jmpbuf(png))) {
        png_free(png, rows);
        imc_png_close(r);
        return -1;
    }
    const imc_png_info *h = &r->header;
    if (h->color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (h->has_trns) png_set_tRNS_to_alpha(png);
    if (h->color_type == PNG_COLOR_TYPE_GRAY && h->bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (h->bit_depth == 16) png_set_swap(png);  // PNG stores 16-bit samples big-endian; hosts here are LE
    if (h->interlaced) png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);
    // What the header promised against what libpng's transforms give.
    png_uint_32 width = png_get_image_width(png, pinfo), height = png_get_image_height(png, pinfo);
    int channels = png_get_channels(png, pinfo), bytes = png_get_bit_depth(png, pinfo) == 16 ? 2 : 1;
    if (width != info->width || height != info->height || channels != info->out_channels || bytes != info->out_bytes)
        png_error(png, "header changed between reads");
    size_t rowbytes = png_get_rowbytes(png, pinfo);
    size_t expect = (size_t)width * (size_t)channels * (size_t)bytes;
    if (rowbytes != expect || (size_t)height > dst_len / (rowbytes ? rowbytes : 1))
        png_error(png, "output buffer does not match the image size");
    rows = (png_bytepp)png_malloc(png, sizeof(png_bytep) * height);
    for (png_uint_32 y = 0; y < height; y++) rows[y] = dst + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_free(png, rows);
    imc_png_close(r);
    return 0;
}

int imc_png_read_info(const uint8_t *data, size_t len, imc_png_info *info, char *err, size_t errlen) {
    imc_png_reader *r = imc_png_open(data, len, info, err, errlen);
    if (!r) return -1;
    imc_png_close(r);
    return 0;
}

// Decodes a PNG whose header `info` gave (from imc_png_read_info), reading the header again.
int imc_png_decode(const uint8_t *data, size_t len, uint8_t *dst, size_t dst_len,
                   imc_png_info *info, char *err, size_t errlen) {
    imc_png_info seen;
    imc_png_reader *r = imc_png_open(data, len, &seen, err, errlen);
    if (!r) return -1;
    return imc_png_finish(r, data, len, dst, dst_len, info, err, errlen);
}
