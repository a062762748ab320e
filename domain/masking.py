"""Personal data citizens type into free text, masked for those without the right to it (issue 18, item 4).

A description, a note, a result, a reason or an address may carry a phone number, an ID number or an e-mail
address the citizen typed in. :func:`mask_personal_text` finds them and masks them in the style of
service.views.mask_contact (139****5678, 0532-****6666, 3702**********1234, w***@example.com); the stored text
is not changed, staff still see it. What is found:

- mainland mobile numbers ``1[3-9]`` + 9 digits, also ``+86``/``0086``/``86`` before them, with spaces or
  hyphens as people type them (``139 1234 5678``, ``+86-139-1234-5678``);
- fixed-line numbers with their area code: ``0532-88886666``, ``(0532)88886666``, ``（0532）8888-6666``,
  ``053288886666``, ``010 8888 6666``, ``+86 532 88886666``;
- ID numbers (GB 11643): 18 characters, birth date plausible, the check digit right (the last may be X or x);
  an 18-digit string with a wrong check digit is left as it is;
- e-mail addresses.

A number glued to a digit or a Latin letter (a case number ``SN-20210601-000001``, an import ref
``SF311-3600298``, a grid code ``SN08-C01-G004``) is not a phone number: each match starts and ends at a digit
boundary. Dates, times and amounts have no 1[3-9]xxxxxxxxx or 0-area-code shape and are left alone. Not found:
a local fixed-line number without its area code (``8888-6666`` reads like a range of years), numbers written in
full-width digits or Chinese numerals, ID numbers of 15 digits (the pre-1999 form), numbers split in other
ways than those above. The function is pure and idempotent.
"""

from __future__ import annotations

import re

__all__ = ["id_check_digit", "mask_personal_text"]

_SEP = r"[ \-]?"
#: Not glued to a digit, a Latin letter or a masked run (``*``: so masking twice changes nothing) before, nor to
#: a decimal point after a digit.
_START = r"(?<![0-9A-Za-z*])(?<![0-9][.,])"
_END = r"(?![0-9*])(?![.,][0-9])"
_AREA = r"(?:10|2[0-9]|[3-9][0-9]{2})"
_COUNTRY = r"(?:(?:\+|00)86[ \-]?|86[ \-]?)"

_ID = (
    rf"(?P<id_head>[1-9][0-9]{{3}})(?P<id_body>[0-9]{{2}}{_SEP}(?:18|19|20)[0-9]{{2}}(?:0[1-9]|1[0-2])"
    rf"(?:0[1-9]|[12][0-9]|3[01]){_SEP})(?P<id_tail>[0-9]{{3}}[0-9Xx])(?![0-9A-Za-z])"
)
_MOBILE = rf"(?P<m_head>{_COUNTRY}?1[3-9][0-9])(?P<m_body>{_SEP}[0-9]{{4}}{_SEP})(?P<m_tail>[0-9]{{4}}){_END}"
_FIXED = (
    rf"(?P<f_head>(?:{_COUNTRY}[(（]?0?|[(（]0|0){_AREA}[)）]?)"
    rf"(?P<f_body>{_SEP}[2-9][0-9]{{2,3}}{_SEP})(?P<f_tail>[0-9]{{4}}){_END}"
)
_EMAIL = (
    r"(?P<e_head>[A-Za-z0-9])(?P<e_body>[A-Za-z0-9._%+\-]*)"
    r"(?P<e_tail>@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})"
)

_FOUND = re.compile(rf"{_START}(?:{_ID}|{_MOBILE}|{_FIXED})|(?<![A-Za-z0-9._%+\-]){_EMAIL}")
_WORTH_LOOKING = re.compile(r"[0-9@]")
_DIGIT = re.compile(r"[0-9]")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """The GB 11643 check character (0-9 or X) of an ID number's first 17 digits."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def _masked(found: re.Match[str]) -> str:
    kind = (found.lastgroup or "").partition("_")[0]
    if kind == "e":
        return f"{found['e_head']}***{found['e_tail']}"
    if kind == "id":
        digits = re.sub(r"[ \-]", "", found.group(0))
        if id_check_digit(digits[:17]) != digits[17].upper():
            return found.group(0)
    return f"{found[kind + '_head']}{_DIGIT.sub('*', found[kind + '_body'])}{found[kind + '_tail']}"


def mask_personal_text(text: str) -> str:
    """The text with every phone number, valid ID number and e-mail address in it masked (see the module)."""
    if not _WORTH_LOOKING.search(text):
        return text
    return _FOUND.sub(_masked, text)
