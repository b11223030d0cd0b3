"""Base45 (RFC 9285): bytes as QR-alphanumeric text, 3 characters per 2 bytes.

Twenty lines do not justify a dependency; tests/test_passqr.py checks every example of
RFC 9285 section 4 and random round trips.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}


class Base45Error(ValueError):
    """Text that is not valid base45; the message gives the position."""


def encode(data: bytes) -> str:
    out = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        e, rest = divmod(n, 45 * 45)
        d, c = divmod(rest, 45)
        out += (ALPHABET[c], ALPHABET[d], ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (ALPHABET[c], ALPHABET[d])
    return "".join(out)


def decode(text: str) -> bytes:
    if len(text) % 3 == 1:
        raise Base45Error(f"{len(text)} characters: base45 text never has a length of 3n+1 (cut off?)")
    out = bytearray()
    for i in range(0, len(text), 3):
        group = text[i : i + 3]
        try:
            values = [_VALUE[ch] for ch in group]
        except KeyError:
            bad = next(j for j, ch in enumerate(group) if ch not in _VALUE)
            raise Base45Error(f"character {i + bad + 1} ({group[bad]!r}) is not in the base45 alphabet") from None
        n = sum(v * 45**k for k, v in enumerate(values))
        if len(group) == 3:
            if n > 0xFFFF:
                raise Base45Error(f"characters {i + 1}..{i + 3} ({group!r}) encode {n}, more than two bytes hold")
            out += n.to_bytes(2, "big")
        else:
            if n > 0xFF:
                raise Base45Error(f"the last two characters ({group!r}) encode {n}, more than one byte holds")
            out.append(n)
    return bytes(out)
