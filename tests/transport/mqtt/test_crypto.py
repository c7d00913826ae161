"""The UDP audio packet and its AES-128-CTR, checked against an independent construction: the key
stream is rebuilt block by block with AES-ECB over the header-as-counter, incremented as one
big-endian 128-bit number (what the firmware's PSA/mbedTLS CTR does), including a carry."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from xiaozhi_hub.transport.mqtt import crypto


def keystream_by_hand(key: bytes, counter_block: bytes, n: int) -> bytes:
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    counter = int.from_bytes(counter_block, "big")
    out = b""
    while len(out) < n:
        out += ecb.update(counter.to_bytes(16, "big"))
        counter = (counter + 1) % (1 << 128)
    return out[:n]


@pytest.mark.parametrize("sequence", [1, 2, 0xFFFFFFFE])      # the last one carries into the timestamp
def test_seal_is_aes_ctr_with_the_header_as_counter(sequence: int) -> None:
    key = os.urandom(16)
    payload = os.urandom(200)                                   # 13 blocks
    datagram = crypto.seal(key, 0x11223344, sequence, payload, timestamp=60)
    header = datagram[:16]
    assert header == bytes([1, 0, 0, 200]) + bytes.fromhex("11223344") + (60).to_bytes(4, "big") \
        + sequence.to_bytes(4, "big")
    stream = keystream_by_hand(key, header, len(payload))
    assert datagram[16:] == bytes(a ^ b for a, b in zip(payload, stream))
    assert crypto.open_payload(key, datagram) == payload


def test_the_nonce_is_the_header_template_the_firmware_expects() -> None:
    keys = crypto.ChannelKeys.new(0xDEADBEEF)
    fields = keys.hello_fields()
    assert len(fields["key"]) == 32 and len(fields["nonce"]) == 32
    nonce = bytes.fromhex(fields["nonce"])
    assert nonce[0] == 0x01 and nonce[1] == 0 and nonce[4:8] == bytes.fromhex("deadbeef")
    assert nonce[2:4] == b"\0\0" and nonce[8:] == bytes(8)
    # The device builds its packets from the nonce: the hub opens them.
    device_header = bytearray(nonce)
    device_header[2:4] = (3).to_bytes(2, "big")
    device_header[12:16] = (1).to_bytes(4, "big")
    body = bytes(a ^ b for a, b in zip(b"abc", keystream_by_hand(keys.key, bytes(device_header), 3)))
    assert crypto.open_payload(keys.key, bytes(device_header) + body) == b"abc"
    assert crypto.ChannelKeys.new().key != crypto.ChannelKeys.new().key


def test_downlink_blocks_never_meet_uplink_blocks() -> None:
    """Same key both ways: the hub's flag bit keeps its counter blocks apart from the device's."""
    up = crypto.Header(0, 100, 7, 0, 5).pack()
    down = crypto.Header(crypto.DOWNLINK_FLAGS, 100, 7, 0, 5).pack()
    up_blocks = {int.from_bytes(up, "big") + i for i in range(4096)}
    down_blocks = {int.from_bytes(down, "big") + i for i in range(4096)}
    assert not up_blocks & down_blocks


def test_peek_checks_each_field() -> None:
    good = crypto.seal(os.urandom(16), 9, 1, b"opus")
    assert crypto.peek(good, 4096).ssrc == 9
    cases = {"short": good[:10], "bad_type": b"\x02" + good[1:], "bad_length": good + b"x",
             "oversized": crypto.seal(os.urandom(16), 9, 1, bytes(5000))}
    for kind, datagram in cases.items():
        with pytest.raises(crypto.PacketError) as err:
            crypto.peek(datagram, 4096)
        assert err.value.kind == kind
