"""The check code a citizen gets at intake: the public track view wants it beside the case number.

Derived, never stored: an HMAC-SHA256 of the case number under the district's secret, cut to
:data:`LENGTH` characters of an alphabet without look-alikes (no 0/O, 1/I/L). Replays are unaffected and
nothing new is written; a guessed sequential number alone no longer opens a case (issue 18 item 6).
"""

from __future__ import annotations

import hashlib
import hmac

#: Letters and digits a citizen cannot misread or mistype for another (31 symbols).
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 6


def check_code(secret: bytes, number: str) -> str:
    """The check code of a case number under the secret."""
    digest = int.from_bytes(hmac.new(secret, number.encode("utf-8"), hashlib.sha256).digest(), "big")
    chars = []
    for _ in range(LENGTH):
        digest, index = divmod(digest, len(ALPHABET))
        chars.append(ALPHABET[index])
    return "".join(chars)


def matches(secret: bytes, number: str, given: str | None) -> bool:
    """Whether the given code is the number's (constant time; case and spaces of the citizen's typing ignored)."""
    typed = (given or "").strip().upper().replace(" ", "").replace("-", "")
    return hmac.compare_digest(check_code(secret, number).encode(), typed.encode("utf-8", "replace"))
