"""Opus codec wrappers and PCM helpers (xiaozhi_hub.audio)."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest

from xiaozhi_hub.audio import pcm
from xiaozhi_hub.audio.opus import OpusDecoder, OpusEncoder, OpusError


def _samples(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<i2").astype(np.float64)


def _peak_hz(b: bytes, rate: int) -> float:
    x = _samples(b)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


# ---------------------------------------------------------------------------- Opus


def test_opus_round_trip_preserves_length_energy_and_pitch() -> None:
    src = pcm.tone(440, 600, 24000, amplitude=0.5)
    enc, dec = OpusEncoder(24000), OpusDecoder(24000)
    packets = enc.encode_all(src)
    assert len(packets) == 10                                   # 600 ms / 60 ms
    assert all(0 < len(p) < 1500 for p in packets)
    out = b"".join(dec.decode(p) for p in packets)
    assert len(out) == len(src)
    steady_in, steady_out = src[len(src) // 3:], out[len(out) // 3:]   # skip the codec's start-up delay
    assert pcm.rms(steady_out) == pytest.approx(pcm.rms(steady_in), rel=0.2)
    assert _peak_hz(steady_out, 24000) == pytest.approx(440, abs=10)


def test_encode_pads_short_last_frame() -> None:
    enc, dec = OpusEncoder(24000), OpusDecoder(24000)
    packets = enc.encode_all(pcm.tone(300, 100, 24000))         # 1.67 frames
    assert len(packets) == 2
    assert sum(len(dec.decode(p)) for p in packets) == 2 * enc.frame_bytes
    with pytest.raises(ValueError, match="one 60 ms frame"):
        enc.encode(bytes(enc.frame_bytes + 2))


def test_dtx_silence_gives_tiny_packets_that_decode_to_one_frame() -> None:
    """The firmware encoder runs with DTX: digital silence becomes 1-byte packets."""
    enc = OpusEncoder(16000, frame_ms=60, complexity=0, dtx=True)
    dec = OpusDecoder(16000)
    packets = [enc.encode(pcm.silence(60, 16000)) for _ in range(10)]
    tiny = [p for p in packets if len(p) <= 3]
    assert len(tiny) >= 4
    for p in tiny:
        out = dec.decode(p)
        assert len(out) == 960 * 2
        assert pcm.rms(out) < 5


def test_empty_packet_is_concealed_as_one_frame() -> None:
    dec = OpusDecoder(16000, frame_ms=60)
    assert len(dec.decode(b"")) == 960 * 2


@pytest.mark.parametrize("garbage", [b"\xff" * 10, b"\xff", b"\x0b\xff\xff\xff\xff"])
def test_garbage_packet_raises_opus_error(garbage: bytes) -> None:
    dec = OpusDecoder(16000)
    with pytest.raises(OpusError, match="cannot decode") as info:
        dec.decode(garbage)
    assert isinstance(info.value, ValueError)
    assert len(dec.decode(OpusEncoder(16000).encode(pcm.tone(200, 60, 16000)))) == 1920  # still usable


def test_strict_decoder_rejects_packets_longer_than_declared_like_firmware() -> None:
    packet = OpusEncoder(24000, frame_ms=60).encode(pcm.tone(200, 60, 24000))
    with pytest.raises(OpusError):
        OpusDecoder(24000, frame_ms=20, strict=True).decode(packet)
    assert len(OpusDecoder(24000, frame_ms=20).decode(packet)) == 1440 * 2   # the hub is lenient


def test_decoder_output_rate_is_independent_of_encoder_rate() -> None:
    packet = OpusEncoder(24000).encode(pcm.tone(300, 60, 24000))
    assert len(OpusDecoder(16000).decode(packet)) == 960 * 2


@pytest.mark.parametrize("kwargs", [{"sample_rate": 44100}, {"channels": 3}, {"frame_ms": 30},
                                    {"application": "music"}])
def test_bad_codec_parameters_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        OpusEncoder(**kwargs)


def test_opus_costs_are_small_enough_to_run_per_frame() -> None:
    enc, dec = OpusEncoder(24000), OpusDecoder(24000)
    frame = pcm.tone(440, 60, 24000)
    t0 = time.perf_counter()
    packets = [enc.encode(frame) for _ in range(100)]
    t1 = time.perf_counter()
    for p in packets:
        dec.decode(p)
    t2 = time.perf_counter()
    # Generous bounds (a loaded CI box): real numbers are ~0.5 ms encode, ~0.05 ms decode.
    assert (t1 - t0) / 100 < 0.01
    assert (t2 - t1) / 100 < 0.005


# ---------------------------------------------------------------------------- PCM


@pytest.mark.parametrize("src,dst", [(16000, 24000), (22050, 24000), (24000, 16000), (48000, 16000), (16000, 8000)])
def test_resample_lengths(src: int, dst: int) -> None:
    x = pcm.tone(300, 1000, src)
    y = pcm.resample(x, src, dst)
    assert len(y) == 2 * dst
    assert _peak_hz(y, dst) == pytest.approx(300, abs=3)


def test_resample_identity_is_a_fast_path() -> None:
    x = pcm.tone(300, 100, 16000)
    assert pcm.resample(x, 16000, 16000) is x


def test_streaming_resampler_matches_one_shot() -> None:
    x = pcm.tone(300, 1000, 22050)
    r = pcm.Resampler(22050, 24000)
    out = b"".join(r.process(x[i:i + 333]) for i in range(0, len(x), 333)) + r.flush()  # odd chunk sizes
    ref = pcm.resample(x, 22050, 24000)
    assert abs(len(out) - len(ref)) <= 4
    n = min(len(out), len(ref)) // 2
    a, b = _samples(out)[:n], _samples(ref)[:n]
    assert np.corrcoef(a, b)[0, 1] > 0.999
    again = r.process(x[:4410]) + r.flush()                      # reusable after flush
    assert abs(len(again) - 4800) <= 4


def test_streaming_resampler_identity_keeps_odd_bytes() -> None:
    r = pcm.Resampler(24000, 24000)
    assert r.process(b"\x01\x02\x03") == b"\x01\x02"
    assert r.process(b"\x04") == b"\x03\x04"


def test_signals_and_helpers() -> None:
    assert pcm.silence(60, 16000) == bytes(1920)
    t = pcm.tone(1000, 100, 16000, amplitude=0.5)
    assert len(t) == 3200
    assert pcm.rms(t) == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.01)
    assert pcm.rms(b"") == 0.0
    assert pcm.duration_ms(t, 16000) == 100
    v = pcm.voice_like(500)
    assert len(v) == 16000 and 1000 < pcm.rms(v) < 20000
    assert v == pcm.voice_like(500)                              # deterministic


def test_frames_pads_or_keeps_the_last_frame() -> None:
    data = bytes(range(256)) * 10                                # 2560 bytes at 16 kHz = 80 ms
    padded = list(pcm.frames(data, 16000, 60))
    assert [len(f) for f in padded] == [1920, 1920]
    assert padded[1][:640] == data[1920:] and padded[1][640:] == bytes(1280)
    assert [len(f) for f in pcm.frames(data, 16000, 60, pad=False)] == [1920, 640]
    assert list(pcm.frames(b"", 16000, 60)) == []


def test_wav_round_trip(tmp_path) -> None:
    x = pcm.tone(500, 200, 16000)
    pcm.write_wav(tmp_path / "a.wav", x, 16000)
    y, rate = pcm.read_wav(tmp_path / "a.wav")
    assert (y, rate) == (x, 16000)


def _write_raw_wav(path, fmt: int, channels: int, rate: int, bits: int, data: bytes) -> None:
    block = channels * bits // 8
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
    body += b"LIST" + struct.pack("<I", 4) + b"INFO"              # an extra chunk to skip
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def test_read_wav_downmixes_stereo_24bit(tmp_path) -> None:
    left = np.full(100, 0.5)
    right = np.full(100, -0.25)
    ints = np.round(np.stack([left, right], axis=1).reshape(-1) * (1 << 23)).astype(np.int32)
    raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    _write_raw_wav(tmp_path / "s24.wav", 1, 2, 44100, 24, raw)
    y, rate = pcm.read_wav(tmp_path / "s24.wav")
    assert rate == 44100 and len(y) == 200
    assert np.all(np.abs(_samples(y) - 0.125 * 32767) <= 2)      # mean of 0.5 and -0.25


def test_read_wav_converts_float(tmp_path) -> None:
    data = np.array([0.0, 0.5, -1.0, 1.0], dtype="<f4").tobytes()
    _write_raw_wav(tmp_path / "f.wav", 3, 1, 16000, 32, data)
    y, _ = pcm.read_wav(tmp_path / "f.wav")
    assert list(_samples(y)) == [0, 16384, -32768, 32767]


def test_read_wav_rejects_non_wav(tmp_path) -> None:
    (tmp_path / "x.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(pcm.WavError, match="not a RIFF"):
        pcm.read_wav(tmp_path / "x.wav")
