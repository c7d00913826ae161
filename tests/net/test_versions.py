"""Version comparison must match the firmware's Ota::IsNewVersionAvailable exactly (docs/protocol.md, OTA check)."""

from __future__ import annotations

import pytest

from xiaozhi_hub.versions import (InvalidVersion, compare, is_newer, is_valid_strict, parse_like_firmware,
                                  parse_strict)


@pytest.mark.parametrize("candidate, current, expected", [
    ("1.8.0", "1.7.6", True),
    ("1.7.6", "1.7.6", False),          # equal is not newer: no reinstall loop
    ("1.7.5", "1.7.6", False),
    ("1.10.0", "1.9.9", True),           # numeric, not lexicographic
    ("2", "1.99.99", True),
    ("1.2.0", "1.2", True),              # shared segments equal -> more segments is newer
    ("1.2", "1.2.0", False),
    ("1.2.3-rc1", "1.2.2", True),        # stoi reads the leading 3 of "3-rc1"
    ("1.2.3-rc1", "1.2.3", False),
    ("1.2.", "1.2", False),              # getline drops the trailing empty segment
    (" 1.2", "1.1", True),               # stoi skips leading whitespace
    ("01.2", "1.2", False),              # leading zeros are just numbers
])
def test_is_newer_matches_firmware(candidate: str, current: str, expected: bool) -> None:
    assert is_newer(candidate, current) is expected


@pytest.mark.parametrize("bad", ["v2.0.0", "1..2", ".1", "beta", "1.x", "99999999999.0"])
def test_versions_that_would_make_stoi_throw(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        parse_like_firmware(bad)
    with pytest.raises(InvalidVersion):
        is_newer(bad, "1.0.0")


def test_parse_like_firmware_values() -> None:
    assert parse_like_firmware("1.2.3-rc1") == (1, 2, 3)
    assert parse_like_firmware("") == ()
    assert parse_like_firmware("-1.2") == (-1, 2)
    assert parse_like_firmware("2147483647") == (2147483647,)


@pytest.mark.parametrize("good", ["1", "1.2", "1.2.3", "2.4.10", "0.0.1", "10.20.30.40"])
def test_strict_accepts_plain_dotted_numbers(good: str) -> None:
    assert parse_strict(good) == tuple(int(p) for p in good.split("."))
    assert is_valid_strict(good)


@pytest.mark.parametrize("bad", ["", "v1.2.3", "1.2.3-rc1", "1.2.", ".1", "1..2", " 1.2", "1.2 ", "1,2",
                                 "２.０", "1." + "1" * 40, "2147483648", "1.-2"])
def test_strict_refuses_everything_else(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        parse_strict(bad)
    assert not is_valid_strict(bad)


def test_strict_error_explains_why() -> None:
    with pytest.raises(InvalidVersion, match="stoi"):
        parse_strict("v1.0")


def test_compare_and_sort_key_agree() -> None:
    versions = ["1.2", "1.10", "1.2.0", "1.9.9", "2", "1.2.1"]
    ordered = sorted(versions, key=parse_strict)
    assert ordered == ["1.2", "1.2.0", "1.2.1", "1.9.9", "1.10", "2"]
    for a, b in zip(ordered, ordered[1:]):
        assert compare(a, b) == -1 and compare(b, a) == 1
        assert is_newer(b, a) and not is_newer(a, b)
    assert compare("1.2", "1.2") == 0
