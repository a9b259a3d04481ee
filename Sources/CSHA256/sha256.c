// SHA-256 for the Merkle tree's hot path: the x86 SHA extensions when the processor has them, portable C
// otherwise. Checked against swift-crypto on random inputs of every length by the test suite.
#include "CSHA256.h"
#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress_portable(uint32_t state[8], const uint8_t *data, size_t blocks) {
    while (blocks--) {
        uint32_t w[64];
        for (int t = 0; t < 16; t++) {
            w[t] = (uint32_t)data[4 * t] << 24 | (uint32_t)data[4 * t + 1] << 16 | (uint32_t)data[4 * t + 2] << 8 |
                   (uint32_t)data[4 * t + 3];
        }
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = ROTR(w[t - 15], 7) ^ ROTR(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = ROTR(w[t - 2], 17) ^ ROTR(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int t = 0; t < 64; t++) {
            uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
            uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
        data += 64;
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>

__attribute__((target("sha,sse4.1,ssse3"))) static void compress_shani(uint32_t state[8], const uint8_t *data,
                                                                     size_t blocks) {
    const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i state1 = _mm_loadu_si128((const __m128i *)&state[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);           // CDAB
    state1 = _mm_shuffle_epi32(state1, 0x1B);     // EFGH
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);  // ABEF
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);  // CDGH

    while (blocks--) {
        const __m128i abef = state0;
        const __m128i cdgh = state1;
        __m128i w[4];
        for (int i = 0; i < 4; i++) {
            w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * i)), mask);
        }
        for (int i = 0; i < 16; i++) {
            __m128i m = _mm_add_epi32(w[i & 3], _mm_loadu_si128((const __m128i *)&K[4 * i]));
            state1 = _mm_sha256rnds2_epu32(state1, state0, m);
            m = _mm_shuffle_epi32(m, 0x0E);
            state0 = _mm_sha256rnds2_epu32(state0, state1, m);
            if (i < 12) {
                // W[4i+16 … 4i+19] from the previous 16 words, replacing the group just consumed.
                __m128i next = _mm_sha256msg1_epu32(w[i & 3], w[(i + 1) & 3]);
                next = _mm_add_epi32(next, _mm_alignr_epi8(w[(i + 3) & 3], w[(i + 2) & 3], 4));
                w[i & 3] = _mm_sha256msg2_epu32(next, w[(i + 3) & 3]);
            }
        }
        state0 = _mm_add_epi32(state0, abef);
        state1 = _mm_add_epi32(state1, cdgh);
        data += 64;
    }

    tmp = _mm_shuffle_epi32(state0, 0x1B);        // FEBA
    state1 = _mm_shuffle_epi32(state1, 0xB1);     // DCHG
    state0 = _mm_blend_epi16(tmp, state1, 0xF0);  // DCBA
    state1 = _mm_alignr_epi8(state1, tmp, 8);     // HGFE
    _mm_storeu_si128((__m128i *)&state[0], state0);
    _mm_storeu_si128((__m128i *)&state[4], state1);
}

static int detect_shani(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int sse41 = (c >> 19) & 1, ssse3 = (c >> 9) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return sse41 && ssse3 && ((b >> 29) & 1);
}
#else
static void compress_shani(uint32_t state[8], const uint8_t *data, size_t blocks) {
    compress_portable(state, data, blocks);
}
static int detect_shani(void) { return 0; }
#endif

typedef void (*compress_fn)(uint32_t[8], const uint8_t *, size_t);

static compress_fn selected(void) {
    // Racing first calls both store the same pointer, so no lock is needed.
    static compress_fn chosen = 0;
    compress_fn fn = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
    if (!fn) {
        fn = detect_shani() ? compress_shani : compress_portable;
        __atomic_store_n(&chosen, fn, __ATOMIC_RELAXED);
    }
    return fn;
}

int caduceus_sha256_accelerated(void) { return detect_shani(); }

static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

void caduceus_sha256_init(caduceus_sha256_ctx *ctx) {
    memcpy(ctx->state, initial, sizeof initial);
    ctx->length = 0;
    ctx->buffered = 0;
}

void caduceus_sha256_update(caduceus_sha256_ctx *ctx, const void *data, size_t length) {
    const uint8_t *bytes = data;
    compress_fn compress = selected();
    ctx->length += length;
    if (ctx->buffered) {
        size_t take = 64 - ctx->buffered < length ? 64 - ctx->buffered : length;
        memcpy(ctx->buffer + ctx->buffered, bytes, take);
        ctx->buffered += take;
        bytes += take;
        length -= take;
        if (ctx->buffered < 64) return;
        compress(ctx->state, ctx->buffer, 1);
        ctx->buffered = 0;
    }
    if (length >= 64) {
        compress(ctx->state, bytes, length / 64);
        bytes += length / 64 * 64;
        length %= 64;
    }
    memcpy(ctx->buffer, bytes, length);
    ctx->buffered = length;
}

void caduceus_sha256_final(caduceus_sha256_ctx *ctx, uint8_t digest[32]) {
    uint64_t bits = ctx->length * 8;
    uint8_t pad[72] = {0x80};
    size_t padding = ctx->buffered < 56 ? 56 - ctx->buffered : 120 - ctx->buffered;
    for (int i = 0; i < 8; i++) pad[padding + i] = (uint8_t)(bits >> (56 - 8 * i));
    uint64_t length = ctx->length;
    caduceus_sha256_update(ctx, pad, padding + 8);
    ctx->length = length;
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(ctx->state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(ctx->state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(ctx->state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)ctx->state[i];
    }
}

void caduceus_sha256_prefixed(uint8_t prefix, const void *a, size_t a_length, const void *b, size_t b_length,
                              uint8_t digest[32]) {
    size_t total = 1 + a_length + b_length;
    if (total <= 119) {
        // Short inputs (every node, most small leaves): pad in place and compress once.
        uint8_t block[128];
        size_t blocks = total <= 55 ? 1 : 2;
        memset(block, 0, blocks * 64);
        block[0] = prefix;
        if (a_length) memcpy(block + 1, a, a_length);
        if (b_length) memcpy(block + 1 + a_length, b, b_length);
        block[total] = 0x80;
        uint64_t bits = (uint64_t)total * 8;
        for (int i = 0; i < 8; i++) block[blocks * 64 - 1 - i] = (uint8_t)(bits >> (8 * i));
        uint32_t state[8];
        memcpy(state, initial, sizeof initial);
        selected()(state, block, blocks);
        for (int i = 0; i < 8; i++) {
            digest[4 * i] = (uint8_t)(state[i] >> 24);
            digest[4 * i + 1] = (uint8_t)(state[i] >> 16);
            digest[4 * i + 2] = (uint8_t)(state[i] >> 8);
            digest[4 * i + 3] = (uint8_t)state[i];
        }
        return;
    }
    caduceus_sha256_ctx ctx;
    caduceus_sha256_init(&ctx);
    caduceus_sha256_update(&ctx, &prefix, 1);
    if (a_length) caduceus_sha256_update(&ctx, a, a_length);
    if (b_length) caduceus_sha256_update(&ctx, b, b_length);
    caduceus_sha256_final(&ctx, digest);
}
