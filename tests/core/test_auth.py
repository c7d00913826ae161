"""Per-device HMAC tokens (reference scheme), static tokens, allowed devices, revocation."""

import base64
import hashlib
import hmac

from xiaozhi_hub.auth import Authenticator, mint_token, strip_bearer
from xiaozhi_hub.settings import AuthSettings

SECRET = "s3cret-key-for-tests"
DEV = "a1:b2:c3:d4:e5:f6"
CLIENT = "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"


def test_token_matches_the_reference_formula():
    token = mint_token(SECRET, CLIENT, DEV, now=1_700_000_000)
    sig, ts = token.split(".")
    want = base64.urlsafe_b64encode(hmac.new(SECRET.encode(), f"{CLIENT}|{DEV}|1700000000".encode(),
                                             hashlib.sha256).digest()).rstrip(b"=").decode()
    assert ts == "1700000000" and sig == want


def test_disabled_admits_anything():
    auth = Authenticator(AuthSettings(enabled=False), SECRET)
    assert auth.check(None, None, None).ok


def test_enabled_checks_tokens():
    auth = Authenticator(AuthSettings(enabled=True, tokens=("static-1",), allowed_devices=("aa:aa:aa:aa:aa:aa",)), SECRET)
    good = mint_token(SECRET, CLIENT, DEV)
    assert auth.check(DEV, CLIENT, f"Bearer {good}").ok
    assert auth.check(DEV, CLIENT, good).ok                      # firmware sends "Bearer " itself, tolerate both
    assert auth.check(DEV, CLIENT, "Bearer static-1").ok
    assert auth.check("AA:AA:AA:AA:AA:AA", "", None).ok         # allowed device, case-insensitive
    assert auth.check(DEV, CLIENT, None).reason == "missing token"
    fresh_ts = good.split(".")[1]
    assert auth.check(DEV, CLIENT, f"Bearer wrong.{fresh_ts}").reason == "bad token signature"
    assert auth.check(DEV, "other-client", f"Bearer {good}").reason == "bad token signature"
    assert auth.check(DEV, CLIENT, "Bearer nodot").reason == "malformed token"


def test_expiry_and_revocation():
    auth = Authenticator(AuthSettings(enabled=True, token_ttl=3600), SECRET)
    old = mint_token(SECRET, CLIENT, DEV, now=1000)
    assert auth.verify_device_token(old.split(" ")[-1], CLIENT, DEV, now=1000 + 3599).ok
    assert auth.verify_device_token(old, CLIENT, DEV, now=1000 + 3601).reason == "token expired"
    auth.revoked_before = lambda d: 2000 if d == DEV else None
    assert auth.verify_device_token(old, CLIENT, DEV, now=1500).reason == "token revoked"
    newer = mint_token(SECRET, CLIENT, DEV, now=2500)
    assert auth.verify_device_token(newer, CLIENT, DEV, now=2600).ok


def test_strip_bearer():
    assert strip_bearer("Bearer abc") == "abc" and strip_bearer("bearer  abc ") == "abc"
    assert strip_bearer("") is None and strip_bearer("Bearer ") is None


def test_vision_tokens_are_their_own_kind():
    from xiaozhi_hub.auth import VISION_TOKEN_TTL, mint_vision_token
    auth = Authenticator(AuthSettings(enabled=True), SECRET)
    vision = mint_vision_token(SECRET, DEV, now=10_000)
    assert auth.verify_vision_token(vision, DEV, now=10_001).ok
    assert auth.verify_vision_token(vision, "11:22:33:44:55:66", now=10_001).reason == "bad token signature"
    assert auth.verify_vision_token(vision, DEV, now=10_000 + VISION_TOKEN_TTL + 1).reason == "token expired"
    ws = mint_token(SECRET, CLIENT, DEV, now=10_000)
    assert not auth.verify_vision_token(ws, DEV, now=10_001).ok                 # a WebSocket token is not one
    assert not auth.verify_device_token(vision, CLIENT, DEV, now=10_001).ok     # nor the other way round
    auth.revoked_before = lambda d: 10_500
    assert auth.verify_vision_token(vision, DEV, now=10_600).reason == "token revoked"


def test_a_non_ascii_token_is_refused_not_a_crash():
    auth = Authenticator(AuthSettings(enabled=True), SECRET)
    assert auth.check(DEV, CLIENT, "Bearer \u00e9\u00e9.1700000000").reason in ("bad token signature", "token expired")
    assert auth.verify_device_token("\u00e9.1700000000", CLIENT, DEV, now=1_700_000_001).reason == "bad token signature"
