#ifndef CADUCEUS_CSHA256_H
#define CADUCEUS_CSHA256_H

#include <stddef.h>
#include <stdint.h>

/// Streaming SHA-256 (FIPS 180-4) state.
typedef struct {
    uint32_t state[8];
    uint64_t length;
    uint8_t buffer[64];
    size_t buffered;
} caduceus_sha256_ctx;

/// Starts a hash.
void caduceus_sha256_init(caduceus_sha256_ctx *ctx);
/// Adds bytes.
void caduceus_sha256_update(caduceus_sha256_ctx *ctx, const void *data, size_t length);
/// Writes the 32-byte digest.
void caduceus_sha256_final(caduceus_sha256_ctx *ctx, uint8_t digest[32]);
/// SHA-256(prefix ‖ a ‖ b) in one call: the shape of RFC 9162 leaf and node hashes.
void caduceus_sha256_prefixed(uint8_t prefix, const void *a, size_t a_length, const void *b, size_t b_length,
                              uint8_t digest[32]);
/// 1 when the SHA extensions of the processor are in use, 0 for the portable code.
int caduceus_sha256_accelerated(void);

#endif
