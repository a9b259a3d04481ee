#!/usr/bin/env python3
"""A second, independent implementation of Caduceus's sealed-object format (version 1), for other tools
and for the known-answer vectors in Tests/SealingTests/Vectors (needs the `cryptography` package).

    sealed_object.py seal KEYFILE IN OUT [--chunk-size C] [--context TEXT] [--fixed]
    sealed_object.py open KEYFILE IN OUT

--fixed uses the vectors' object id, salt and nonces instead of random ones.
"""
import hashlib
import hmac
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

HEADER = 4096
TAG_AT = 4064
OVERHEAD = 28


def keys(data_key, salt, object_id):
    prk = hmac.new(salt, data_key, hashlib.sha256).digest()
    def expand(label):
        return HKDFExpand(hashes.SHA256(), 32, label + object_id).derive(prk)
    return expand(b"caduceus/seal/v1/enc"), expand(b"caduceus/seal/v1/commit")


def aad(header, index, last):
    return hashlib.sha256(header).digest() + struct.pack(">QB", index, 1 if last else 0)


def seal(data_key, plaintext, chunk_size=1 << 20, context=b"", key_id=bytes(16), key_version=1,
         object_id=None, salt=None, nonce=None):
    object_id = object_id or os.urandom(16)
    salt = salt or os.urandom(32)
    nonce = nonce or (lambda i: os.urandom(12))
    enc, com = keys(data_key, salt, object_id)
    head = b"CADSEAL1" + struct.pack(">HHIQ", 1, 1, chunk_size, len(plaintext)) + object_id + salt + key_id
    head += struct.pack(">IH", key_version, len(context)) + context
    head += bytes(TAG_AT - len(head))
    head += hmac.new(com, head, hashlib.sha256).digest()
    per = chunk_size - OVERHEAD
    count = max(1, -(-len(plaintext) // per))
    out = [head]
    for i in range(count):
        n = nonce(i)
        out.append(n + AESGCM(enc).encrypt(n, plaintext[i * per:(i + 1) * per], aad(head, i, i == count - 1)))
    return b"".join(out)


def open_sealed(data_key, sealed):
    head = sealed[:HEADER]
    object_id, salt = head[24:40], head[40:72]
    enc, com = keys(data_key, salt, object_id)
    if len(head) < HEADER or not hmac.compare_digest(hmac.new(com, head[:TAG_AT], hashlib.sha256).digest(), head[TAG_AT:]):
        raise ValueError("the header does not verify")
    chunk_size, length = struct.unpack(">IQ", head[12:24])
    per = chunk_size - OVERHEAD
    count = max(1, -(-length // per))
    last = length - (count - 1) * per
    if len(sealed) != HEADER + (count - 1) * chunk_size + last + OVERHEAD:
        raise ValueError("truncated or extended")
    plain = []
    for i in range(count):
        chunk = sealed[HEADER + i * chunk_size:HEADER + i * chunk_size + (per if i < count - 1 else last) + OVERHEAD]
        plain.append(AESGCM(enc).decrypt(chunk[:12], chunk[12:], aad(head, i, i == count - 1)))
    return b"".join(plain)


FIXED_OBJECT_ID = bytes(range(16))
FIXED_SALT = bytes(range(32, 64))


def fixed_nonce(i):
    return struct.pack(">IQ", 0x4E4F4E43, i)


def main(argv):
    if len(argv) < 5 or argv[1] not in ("seal", "open"):
        sys.exit(__doc__)
    key = open(argv[2], "rb").read()
    data = open(argv[3], "rb").read()
    options = dict(zip(argv[5::2], argv[6::2]))
    if argv[1] == "seal":
        fixed = "--fixed" in argv
        result = seal(key, data, int(options.get("--chunk-size", 1 << 20)), options.get("--context", "").encode(),
                      object_id=FIXED_OBJECT_ID if fixed else None, salt=FIXED_SALT if fixed else None,
                      nonce=fixed_nonce if fixed else None)
    else:
        result = open_sealed(key, data)
    open(argv[4], "wb").write(result)


if __name__ == "__main__":
    main(sys.argv)
