#!/usr/bin/env python3
"""Independent reader for the golden objects, written from docs/FORMAT.md alone.

It shares no code with common/codec.cpp, so when it and codec_test agree, the document and the
implementation agree. Needs python3-cryptography and the zstd command-line tool.

    python3 tests/unit/data/golden-check.py tests/unit/data/golden-zstd-aes.pgvo tests/unit/data/golden-zstd.pgvo
"""
import hashlib
import struct
import subprocess
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TEST_KEY = bytes(range(32))
EXPECTED = (b"pgvault golden object\n" * ((100 * 1024 + 21) // 22))


def decode(obj: bytes, master: bytes) -> bytes:
    header, body, trailer = obj[:32], obj[32:-48], obj[-48:]
    magic, version, compression, encryption, reserved = struct.unpack(">4sBBBB", header[:8])
    salt = header[8:24]
    (chunk_size,) = struct.unpack(">I", header[24:28])
    assert magic == b"PGVO" and version == 1 and reserved == 0 and header[28:32] == b"\0" * 4
    digest, size = trailer[:32], struct.unpack(">Q", trailer[32:40])[0]
    assert trailer[40:44] == b"\0" * 4 and trailer[44:48] == b"PGVT"

    if encryption == 1:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"pgvault object v1").derive(master)
        aead = AESGCM(key)
        records = [body[i:i + chunk_size + 16] for i in range(0, len(body), chunk_size + 16)] or [b""]
        stream = b""
        for index, record in enumerate(records):
            final = index == len(records) - 1
            nonce = struct.pack(">Q", index) + b"\0\0\0" + (b"\1" if final else b"\0")
            aad = header + (trailer[:40] if final else b"")
            stream += aead.decrypt(nonce, record, aad)  # ciphertext || tag
    else:
        assert encryption == 0 and chunk_size == 0 and salt == b"\0" * 16
        stream = body

    if compression == 1:
        plain = subprocess.run(["zstd", "-d", "-c", "-q"], input=stream, check=True, capture_output=True).stdout
    else:
        assert compression == 0
        plain = stream
    assert len(plain) == size, (len(plain), size)
    assert hashlib.sha256(plain).digest() == digest
    return plain


def main() -> int:
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            plain = decode(f.read(), TEST_KEY)
        assert plain == EXPECTED, path
        print(f"{path}: ok ({len(plain)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
