"""Raw TLS records for clients no library will be: hand-made ClientHellos and alerts."""
import os
import struct


def record(content_type, body, version=0x0301):
    return struct.pack(">BHH", content_type, version, len(body)) + body


def ext(kind, data):
    return struct.pack(">HH", kind, len(data)) + data


def client_hello(version=0x0303, ciphers=(0xC02F, 0xC030, 0x009C), extensions=None,
                 sni="mx.test.example", broken_length=False):
    if extensions is None:
        name = sni if isinstance(sni, bytes) else sni.encode()
        extensions = (
            ext(0, struct.pack(">HBH", len(name) + 3, 0, len(name)) + name)
            + ext(10, struct.pack(">HHH", 4, 0x001D, 0x0017))  # x25519, secp256r1
            + ext(11, b"\x01\x00")
            + ext(13, struct.pack(">HHHH", 6, 0x0401, 0x0804, 0x0403)))
    suites = b"".join(struct.pack(">H", c) for c in ciphers)
    body = (struct.pack(">H", version) + os.urandom(32) + b"\x00"
            + struct.pack(">H", len(suites)) + suites + b"\x01\x00")
    ext_len = len(extensions) + (40 if broken_length else 0)
    body += struct.pack(">H", ext_len) + extensions
    hs = struct.pack(">B", 1) + struct.pack(">I", len(body))[1:] + body
    return record(22, hs)


def alert(description, level=2):
    return record(21, bytes([level, description]))
