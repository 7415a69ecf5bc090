#include "imc_deflate_walk.h"

#include <stdlib.h>
#include <string.h>

// A walker keeps a stream's bits in a 64-bit buffer refilled eight bytes at a time, and the two
// Huffman codes of the block it is in as lookup tables. A table entry says how many bits a symbol
// takes, its code and its extra bits together (the walk needs no symbol's value), and what kind of
// symbol it is. Codes longer than PRIMARY_BITS go on in a 32-entry subtable.
#define MAX_CODE 15
#define PRIMARY_BITS 10
#define SUB_BITS (MAX_CODE - PRIMARY_BITS)
#define LITLEN_SYMBOLS 288
#define DIST_SYMBOLS 32

#define ENTRY_BITS 63u       // bits the symbol takes, code and extra bits
#define ENTRY_SUB 64u        // bits 16-31 are where the subtable starts
#define ENTRY_LENGTH 128u    // a length (a distance follows), the end of the block, or bad
#define ENTRY_END 256u
#define ENTRY_BAD 512u

typedef struct {
    const uint8_t *start, *next, *end;
    uint64_t bits;
    unsigned count;          // valid bits in `bits`
    int at_final;            // the block being walked is the final one
    size_t final_header_bit;
    uint32_t litlen[(1 << PRIMARY_BITS) + LITLEN_SYMBOLS * (1 << SUB_BITS)];
    uint32_t dist[(1 << PRIMARY_BITS) + DIST_SYMBOLS * (1 << SUB_BITS)];
} walker;

static const uint8_t length_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                         2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
static const uint8_t code_length_order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

static uint32_t litlen_entry(unsigned symbol, unsigned length) {
    if (symbol < 256) return length;
    if (symbol == 256) return length | ENTRY_LENGTH | ENTRY_END;
    if (symbol <= 285) return (length + length_extra[symbol - 257]) | ENTRY_LENGTH;
    return 1 | ENTRY_LENGTH | ENTRY_BAD;  // 286 and 287 are never sent
}

static uint32_t dist_entry(unsigned symbol, unsigned length) {
    return symbol < 30 ? length + dist_extra[symbol] : (1 | ENTRY_BAD);
}

// The code-length code's entries keep the symbol (0-18) in bits 16-31: its codes are at most 7
// bits, so they never need a subtable there.
static uint32_t code_length_entry(unsigned symbol, unsigned length) { return length | symbol << 16; }

enum code_kind { LITLEN, DIST, CODE_LENGTH };

static uint32_t reversed(uint32_t code, unsigned length) {
    uint32_t r = 0;
    for (unsigned i = 0; i < length; i++) r |= ((code >> i) & 1) << (length - 1 - i);
    return r;
}

// Fills `table` for the canonical Huffman code with code lengths `lengths[0 ..< n]`. Returns -1
// for an over-subscribed code; an incomplete one is allowed, its unused entries are bad.
static int build_table(uint32_t *table, const uint8_t *lengths, unsigned n, enum code_kind kind) {
    uint16_t count[MAX_CODE + 1] = {0}, offset[MAX_CODE + 2];
    uint16_t sorted[LITLEN_SYMBOLS];
    for (unsigned s = 0; s < n; s++) count[lengths[s]]++;
    count[0] = 0;
    int left = 1;
    for (unsigned l = 1; l <= MAX_CODE; l++) {
        left = left * 2 - count[l];
        if (left < 0) return -1;
    }
    offset[1] = 0;
    for (unsigned l = 1; l <= MAX_CODE; l++) offset[l + 1] = offset[l] + count[l];
    for (unsigned s = 0; s < n; s++)
        if (lengths[s]) sorted[offset[lengths[s]]++] = (uint16_t)s;
    const unsigned used = offset[MAX_CODE + 1];  // after the loop, offset[l] is where length l + 1 begins
    const uint32_t bad = kind == LITLEN ? (1 | ENTRY_LENGTH | ENTRY_BAD) : (1 | ENTRY_BAD);
    const uint32_t primary = 1u << PRIMARY_BITS, sub = 1u << SUB_BITS;
    for (uint32_t i = 0; i < primary; i++) table[i] = bad;
    uint32_t next_sub = primary, code = 0;
    unsigned previous = 0;
    for (unsigned i = 0; i < used; i++) {
        unsigned s = sorted[i], length = lengths[s];
        code = i == 0 ? 0 : (code + 1) << (length - previous);  // canonical codes, most significant bit first
        previous = length;
        uint32_t r = reversed(code, length);  // deflate sends a code's first bit first
        uint32_t entry = kind == LITLEN ? litlen_entry(s, length)
                         : kind == DIST ? dist_entry(s, length) : code_length_entry(s, length);
        if (length <= PRIMARY_BITS) {
            for (uint32_t k = r; k < primary; k += 1u << length) table[k] = entry;
            continue;
        }
        uint32_t p = r & (primary - 1);
        if (!(table[p] & ENTRY_SUB)) {
            table[p] = ENTRY_SUB | next_sub << 16;
            for (uint32_t k = 0; k < sub; k++) table[next_sub + k] = bad;
            next_sub += sub;
        }
        uint32_t base = table[p] >> 16;
        for (uint32_t k = r >> PRIMARY_BITS; k < sub; k += 1u << (length - PRIMARY_BITS)) table[base + k] = entry;
    }
    return 0;
}

#define REFILL(next, bits, count)                                                              \
    do {                                                                                        \
        uint64_t word_;                                                                         \
        memcpy(&word_, next, 8);                                                                \
        bits |= word_ << count;                                                                 \
        next += (63 - count) >> 3;                                                              \
        count |= 56;                                                                            \
    } while (0)
#define LOOK_UP(table, bits, e)                                                                 \
    do {                                                                                        \
        e = table[bits & ((1u << PRIMARY_BITS) - 1)];                                           \
        if (e & ENTRY_SUB) e = table[(e >> 16) + ((bits >> PRIMARY_BITS) & ((1u << SUB_BITS) - 1))]; \
    } while (0)
#define TAKE_BITS(bits, count, e)                                                               \
    do {                                                                                        \
        bits >>= e & ENTRY_BITS;                                                                \
        count -= e & ENTRY_BITS;                                                                \
    } while (0)

static inline void refill(walker *w) {
    if (w->end - w->next >= 8) {
        uint64_t word;
        memcpy(&word, w->next, 8);
        w->bits |= word << w->count;
        w->next += (63 - w->count) >> 3;
        w->count |= 56;
    } else {
        while (w->count <= 56 && w->next < w->end) {
            w->bits |= (uint64_t)*w->next++ << w->count;
            w->count += 8;
        }
    }
}

static inline int take(walker *w, unsigned n, uint32_t *value) {
    if (w->count < n) {
        refill(w);
        if (w->count < n) return -1;
    }
    *value = (uint32_t)(w->bits & ((1ull << n) - 1));
    w->bits >>= n;
    w->count -= n;
    return 0;
}

static size_t bit_position(const walker *w) { return (size_t)(w->next - w->start) * 8 - w->count; }

// The code lengths of a dynamic block's two codes, read with the code-length code.
static int read_dynamic_lengths(walker *w, uint8_t *lengths, unsigned *litlen_count, unsigned *dist_count) {
    uint32_t hlit, hdist, hclen;
    if (take(w, 5, &hlit) || take(w, 5, &hdist) || take(w, 4, &hclen)) return -1;
    const unsigned total = hlit + 257 + hdist + 1;
    uint8_t cl_lengths[19] = {0};
    for (unsigned i = 0; i < hclen + 4; i++) {
        uint32_t v;
        if (take(w, 3, &v)) return -1;
        cl_lengths[code_length_order[i]] = (uint8_t)v;
    }
    // The code-length code's table goes where the distance code's will be built next.
    if (build_table(w->dist, cl_lengths, 19, CODE_LENGTH)) return -1;
    unsigned i = 0;
    while (i < total) {
        if (w->count < 7) refill(w);
        uint32_t e = w->dist[w->bits & ((1u << PRIMARY_BITS) - 1)];
        if ((e & ENTRY_BAD) || (e & ENTRY_BITS) > w->count) return -1;
        TAKE_BITS(w->bits, w->count, e);
        unsigned symbol = e >> 16, repeat, value;
        uint32_t v;
        if (symbol < 16) {
            lengths[i++] = (uint8_t)symbol;
            continue;
        }
        if (symbol == 16) {
            if (i == 0 || take(w, 2, &v)) return -1;
            repeat = 3 + v;
            value = lengths[i - 1];
        } else if (symbol == 17) {
            if (take(w, 3, &v)) return -1;
            repeat = 3 + v;
            value = 0;
        } else {
            if (take(w, 7, &v)) return -1;
            repeat = 11 + v;
            value = 0;
        }
        if (repeat > total - i) return -1;
        memset(lengths + i, (int)value, repeat);
        i += repeat;
    }
    *litlen_count = hlit + 257;
    *dist_count = hdist + 1;
    return lengths[256] ? 0 : -1;  // a block without an end-of-block code cannot end
}

// Reads block headers, skipping stored blocks, until a block with codes: returns 1 (its tables are
// built), 0 (the stream has ended exactly at its last byte) or -1.
static int next_block(walker *w) {
    for (;;) {
        if (w->at_final) return (bit_position(w) + 7) / 8 == (size_t)(w->end - w->start) ? 0 : -1;
        size_t header = bit_position(w);
        uint32_t final, type;
        if (take(w, 1, &final) || take(w, 2, &type)) return -1;
        if (final) {
            w->at_final = 1;
            w->final_header_bit = header;
        }
        uint8_t lengths[LITLEN_SYMBOLS + DIST_SYMBOLS];
        unsigned litlen_count, dist_count;
        if (type == 0) {  // stored: to a byte boundary, then LEN, NLEN and LEN bytes
            unsigned drop = w->count & 7;
            w->bits >>= drop;
            w->count -= drop;
            const uint8_t *at = w->next - w->count / 8;
            if (w->end - at < 4) return -1;
            unsigned length = at[0] | at[1] << 8, complement = at[2] | at[3] << 8;
            if ((length ^ 0xFFFF) != complement || (size_t)(w->end - at - 4) < length) return -1;
            w->next = at + 4 + length;
            w->bits = 0;
            w->count = 0;
            continue;
        } else if (type == 1) {  // the fixed codes
            memset(lengths, 8, 144);
            memset(lengths + 144, 9, 112);
            memset(lengths + 256, 7, 24);
            memset(lengths + 280, 8, 8);
            memset(lengths + LITLEN_SYMBOLS, 5, DIST_SYMBOLS);
            litlen_count = LITLEN_SYMBOLS;
            dist_count = DIST_SYMBOLS;
        } else if (type == 2) {
            if (read_dynamic_lengths(w, lengths, &litlen_count, &dist_count)) return -1;
        } else {
            return -1;
        }
        if (build_table(w->litlen, lengths, litlen_count, LITLEN) ||
            build_table(w->dist, lengths + litlen_count, dist_count, DIST))
            return -1;
        return 1;
    }
}

// The bytes a stream must have left for WALK_SYMBOL: two refills of eight bytes, the first
// moving on at most seven.
#define FAST_BYTES 15

// A symbol or two of a stream with at least FAST_BYTES bytes left. After a refill the bit buffer holds
// at least 56 bits: a length and its distance take at most 48, a literal at most 15, so a literal
// leaves enough for the next literal or length code (at most 20 bits); a distance after that waits
// for another refill. On the end of the block or a bad code it goes to `stop` with the entry in
// `e`, its bits not taken.
#define WALK_SYMBOL(next, bits, count, litlen, dist, e, stop)                                  \
    do {                                                                                        \
        REFILL(next, bits, count);                                                              \
        LOOK_UP(litlen, bits, e);                                                               \
        if (!(e & ENTRY_LENGTH)) {                                                              \
            TAKE_BITS(bits, count, e);                                                          \
            LOOK_UP(litlen, bits, e);                                                           \
            if (!(e & ENTRY_LENGTH)) {                                                          \
                TAKE_BITS(bits, count, e);                                                      \
                break;                                                                          \
            }                                                                                   \
            if (e & (ENTRY_END | ENTRY_BAD)) goto stop;                                         \
            TAKE_BITS(bits, count, e);                                                          \
            REFILL(next, bits, count);                                                          \
        } else {                                                                                \
            if (e & (ENTRY_END | ENTRY_BAD)) goto stop;                                         \
            TAKE_BITS(bits, count, e);                                                          \
        }                                                                                       \
        LOOK_UP(dist, bits, e);                                                                 \
        if (e & ENTRY_BAD) goto stop;                                                           \
        TAKE_BITS(bits, count, e);                                                              \
    } while (0)

// The rest of a block's codes, checking every symbol against the bits left: for a stream's last bytes.
static int walk_codes_checked(walker *w) {
    for (;;) {
        refill(w);
        uint32_t e;
        LOOK_UP(w->litlen, w->bits, e);
        if ((e & ENTRY_BAD) || (e & ENTRY_BITS) > w->count) return -1;
        TAKE_BITS(w->bits, w->count, e);
        if (!(e & ENTRY_LENGTH)) continue;
        if (e & ENTRY_END) return 0;
        LOOK_UP(w->dist, w->bits, e);
        if ((e & ENTRY_BAD) || (e & ENTRY_BITS) > w->count) return -1;
        TAKE_BITS(w->bits, w->count, e);
    }
}

// Takes the entry that stopped a walk: the end of the block (0) or a bad code (-1).
static int stopped_at(walker *w, uint32_t e) {
    if (e & ENTRY_BAD) return -1;
    TAKE_BITS(w->bits, w->count, e);
    return 0;
}

// The rest of a block's codes, one stream.
static int walk_codes(walker *w) {
    const uint8_t *next = w->next, *const end = w->end;
    uint64_t bits = w->bits;
    unsigned count = w->count;
    const uint32_t *litlen = w->litlen, *dist = w->dist;
    uint32_t e;
    while (end - next >= FAST_BYTES) WALK_SYMBOL(next, bits, count, litlen, dist, e, stop);
    w->next = next, w->bits = bits, w->count = count;
    return walk_codes_checked(w);
stop:
    w->next = next, w->bits = bits, w->count = count;
    return stopped_at(w, e);
}

// Two streams' codes in turn, until one of them reaches the end of its block (returns 0 for `a`,
// 1 for `b`), comes within FAST_BYTES of its end (2), or has a bad code (-1).
static int walk_codes_together(walker *a, walker *b) {
    const uint8_t *a_next = a->next, *const a_end = a->end;
    const uint8_t *b_next = b->next, *const b_end = b->end;
    uint64_t a_bits = a->bits, b_bits = b->bits;
    unsigned a_count = a->count, b_count = b->count;
    const uint32_t *a_litlen = a->litlen, *a_dist = a->dist, *b_litlen = b->litlen, *b_dist = b->dist;
    uint32_t e, f;
    int result = 2;
    while (a_end - a_next >= FAST_BYTES && b_end - b_next >= FAST_BYTES) {
        WALK_SYMBOL(a_next, a_bits, a_count, a_litlen, a_dist, e, a_stop);
        WALK_SYMBOL(b_next, b_bits, b_count, b_litlen, b_dist, f, b_stop);
    }
    goto save;
a_stop:
    result = 0;
    goto save;
b_stop:
    result = 1;
save:
    a->next = a_next, a->bits = a_bits, a->count = a_count;
    b->next = b_next, b->bits = b_bits, b->count = b_count;
    if (result == 0) return stopped_at(a, e) ? -1 : 0;
    if (result == 1) return stopped_at(b, f) ? -1 : 1;
    return 2;
}

static void start(walker *w, const uint8_t *bytes, size_t count) {
    w->start = w->next = bytes;
    w->end = bytes + count;
    w->bits = 0;
    w->count = 0;
    w->at_final = 0;
}

static void finish(const walker *w, imc_deflate_end *end) {
    end->final_header_bit = w->final_header_bit;
    end->padding_bits = (unsigned)((8 - bit_position(w) % 8) % 8);
}

int imc_deflate_find_final(const uint8_t *a, size_t a_count, imc_deflate_end *a_end,
                           const uint8_t *b, size_t b_count, imc_deflate_end *b_end) {
    walker *w = malloc((b ? 2 : 1) * sizeof(walker));
    if (!w) return -2;
    walker *x = &w[0], *y = b ? &w[1] : NULL;
    start(x, a, a_count);
    int x_state = next_block(x), y_state = 0;
    if (y) {
        start(y, b, b_count);
        y_state = next_block(y);
    }
    while (x_state > 0 && y_state > 0) {
        switch (walk_codes_together(x, y)) {
        case 0: x_state = next_block(x); break;
        case 1: y_state = next_block(y); break;
        case 2:  // one is near its end: it finishes its block alone
            if (x->end - x->next < FAST_BYTES) x_state = walk_codes_checked(x) ? -1 : next_block(x);
            else y_state = walk_codes_checked(y) ? -1 : next_block(y);
            break;
        default: x_state = -1; break;
        }
    }
    while (x_state > 0) x_state = walk_codes(x) ? -1 : next_block(x);
    while (y_state > 0) y_state = walk_codes(y) ? -1 : next_block(y);
    int result = x_state < 0 || y_state < 0 ? -1 : 0;
    if (result == 0) {
        finish(x, a_end);
        if (y) finish(y, b_end);
    }
    free(w);
    return result;
}
