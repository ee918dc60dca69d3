#!/usr/bin/env python3
"""Independent reader for the golden objects, written from docs/FORMAT.md alone.

It shares no code with the C++ codec (common/codec/), so when it and codec_test agree, the document and the
implementation agree. Needs python3-cryptography and the zstd command-line tool.

    python3 tests/unit/data/golden-check.py tests/unit/data/golden-*.pgvo

Version 1 objects (golden-zstd*.pgvo) are not bound to a name; version 2 objects (golden-v2-*.pgvo) are
read as stored under GOLDEN_NAME.
"""
import hashlib
import hmac
import struct
import subprocess
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TEST_KEY = bytes(range(32))
GOLDEN_NAME = b"wal/0000000100000000/000000010000000000000007"
EXPECTED = (b"pgvault golden object\n" * ((100 * 1024 + 21) // 22))


def hkdf(master: bytes, salt, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(master)


def decode(obj: bytes, master: bytes, name: bytes) -> bytes:
    header, body, trailer = obj[:32], obj[32:-48], obj[-48:]
    magic, version, compression, encryption, reserved = struct.unpack(">4sBBBB", header[:8])
    salt = header[8:24]
    (chunk_size,) = struct.unpack(">I", header[24:28])
    assert magic == b"PGVO" and version in (1, 2) and reserved == 0
    digest, size = trailer[:32], struct.unpack(">Q", trailer[32:40])[0]
    kind = trailer[40]
    assert trailer[41:44] == b"\0" * 3 and trailer[44:48] == b"PGVT"
    if version == 1:
        assert header[28:32] == b"\0" * 4 and kind == 0
        auth_trailer, name_block = trailer[:40], b""
    else:
        assert kind == encryption  # 1: keyed claim, exactly when encrypted
        auth_trailer, name_block = trailer[:44], struct.pack(">H", len(name)) + name

    if encryption == 1:
        if version == 2:
            assert header[28:32] == hkdf(master, salt, b"pgvault key id v2")[:4], "wrong key"
        key = hkdf(master, salt, b"pgvault object v%d" % version)
        aead = AESGCM(key)
        records = [body[i:i + chunk_size + 16] for i in range(0, len(body), chunk_size + 16)] or [b""]
        stream = b""
        for index, record in enumerate(records):
            final = index == len(records) - 1
            nonce = struct.pack(">Q", index) + b"\0\0\0" + (b"\1" if final else b"\0")
            aad = header + name_block + (auth_trailer if final else b"")
            stream += aead.decrypt(nonce, record, aad)  # ciphertext || tag
    else:
        assert encryption == 0 and chunk_size == 0 and salt == b"\0" * 16 and header[28:32] == b"\0" * 4
        stream = body

    if compression == 1:
        plain = subprocess.run(["zstd", "-d", "-c", "-q"], input=stream, check=True, capture_output=True).stdout
    else:
        assert compression == 0
        plain = stream
    assert len(plain) == size, (len(plain), size)
    sha = hashlib.sha256(plain).digest()
    if kind == 1:
        digest_key = hkdf(master, None, b"pgvault digest v2")
        assert hmac.new(digest_key, sha + struct.pack(">Q", size) + name, hashlib.sha256).digest() == digest
        assert sha not in obj  # no fingerprint in clear
    else:
        assert sha == digest
    return plain


def main() -> int:
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            obj = f.read()
        plain = decode(obj, TEST_KEY, GOLDEN_NAME)
        assert plain == EXPECTED, path
        if obj[4] == 2 and obj[6] == 1:  # bound to its name: the same bytes under another name fail
            try:
                decode(obj, TEST_KEY, GOLDEN_NAME[:-1] + b"8")
                raise AssertionError(f"{path}: decoded under another name")
            except InvalidTag:
                pass
        print(f"{path}: ok ({len(plain)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
