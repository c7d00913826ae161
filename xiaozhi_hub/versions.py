"""Firmware version strings, compared exactly the way the stock firmware compares them.

The device decides whether to upgrade in ``Ota::IsNewVersionAvailable`` (docs/protocol.md, OTA check): it splits
both strings on ``.`` with ``std::getline`` and converts every segment with ``std::stoi``, then
compares the numbers left to right; when all shared segments are equal the string with more segments
is newer. ``stoi`` throws on a segment with no leading digit (``v2``, ``beta``, an empty segment) and
on values outside a 32-bit ``int``, and an exception there takes the device down. So:

* versions the hub *stores and sends* must be plain dotted numbers (:func:`parse_strict`), refused
  otherwise at upload time;
* versions *devices report* are read the lenient way the firmware reads them (:func:`parse_like_firmware`),
  so ``1.2.3-rc1`` counts as ``1.2.3`` exactly as on the device.

Python compares tuples the same way the firmware compares its vectors (element by element, a
shorter equal prefix is smaller), so a parsed version tuple is also a correct sort key.
"""

from __future__ import annotations

import re

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1
MAX_LENGTH = 31  # esp_app_desc_t.version is char[32] including the terminating NUL

_STRICT = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_C_SPACE = " \t\n\v\f\r"


class InvalidVersion(ValueError):
    """A version string the hub refuses (it would crash or confuse the firmware's comparison)."""


def parse_strict(text: str) -> tuple[int, ...]:
    """Parse a version the hub may store and offer: ``X``, ``X.Y``, ``X.Y.Z``, ... digits only.

    Each segment must fit a 32-bit ``int`` (``stoi`` throws otherwise) and the whole string must fit
    the 31 characters of the firmware's version field.
    """
    if not isinstance(text, str) or not _STRICT.fullmatch(text):
        raise InvalidVersion(
            f"{text!r} is not a plain dotted-number version like 1.2.3 (the firmware compares versions "
            "with C++ stoi per segment, so letters, prefixes like 'v' and suffixes like '-rc1' are refused)")
    if len(text) > MAX_LENGTH:
        raise InvalidVersion(f"{text!r} is longer than the firmware's {MAX_LENGTH}-character version field")
    parts = tuple(int(p) for p in text.split("."))
    if any(p > INT_MAX for p in parts):
        raise InvalidVersion(f"{text!r} has a segment larger than {INT_MAX} (stoi would overflow on the device)")
    return parts


def is_valid_strict(text: str) -> bool:
    """True if :func:`parse_strict` accepts ``text``."""
    try:
        parse_strict(text)
    except InvalidVersion:
        return False
    return True


def _stoi(segment: str) -> int:
    """C++ ``std::stoi(segment)`` (base 10): skip C whitespace, optional sign, leading digits."""
    i = 0
    n = len(segment)
    while i < n and segment[i] in _C_SPACE:
        i += 1
    start = i
    if i < n and segment[i] in "+-":
        i += 1
    digits_start = i
    while i < n and "0" <= segment[i] <= "9":
        i += 1
    if i == digits_start:
        raise InvalidVersion(f"segment {segment!r} has no leading digit (std::stoi throws invalid_argument)")
    value = int(segment[start:i])
    if not INT_MIN <= value <= INT_MAX:
        raise InvalidVersion(f"segment {segment!r} is out of int range (std::stoi throws out_of_range)")
    return value


def _getline_split(text: str) -> list[str]:
    """Segments as produced by ``while (std::getline(ss, segment, '.'))``: no trailing empty segment."""
    if text == "":
        return []
    parts = text.split(".")
    if parts[-1] == "":
        parts.pop()
    return parts


def parse_like_firmware(text: str) -> tuple[int, ...]:
    """Parse a version exactly as ``Ota::ParseVersion`` does; raises :class:`InvalidVersion` where it throws."""
    return tuple(_stoi(seg) for seg in _getline_split(text))


def is_newer(candidate: str, current: str) -> bool:
    """The firmware's ``IsNewVersionAvailable(current, candidate)``.

    Raises :class:`InvalidVersion` if either string would make the firmware throw; callers offering
    an update must treat that as "do not offer".
    """
    return parse_like_firmware(candidate) > parse_like_firmware(current)


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 comparing two versions the firmware's way (``1.2`` == ``1.2``, ``1.2`` < ``1.2.0``)."""
    pa, pb = parse_like_firmware(a), parse_like_firmware(b)
    return (pa > pb) - (pa < pb)
