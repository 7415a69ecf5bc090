#ifndef IMC_DEFLATE_WALK_H
#define IMC_DEFLATE_WALK_H

#include <stddef.h>
#include <stdint.h>

// Where a complete raw deflate stream's final block begins (in bits from the stream's start) and
// how many bits at the end of its last byte follow the final block's end-of-block code.
typedef struct {
    size_t final_header_bit;
    unsigned padding_bits;
} imc_deflate_end;

// Walks one or two complete raw deflate streams (RFC 1951) block by block without producing their
// data: each block's codes are decoded only to find where the block ends. Two streams are walked
// together, one symbol of each in turn, so that the two lookups overlap; `b` may be NULL.
// Returns 0; -1 when a stream is malformed or has bytes after its final block; -2 when memory for
// the decoding tables cannot be had.
int imc_deflate_find_final(const uint8_t *a, size_t a_count, imc_deflate_end *a_end,
                           const uint8_t *b, size_t b_count, imc_deflate_end *b_end);

#endif
