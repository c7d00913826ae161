"""The repository's manifest is well-formed and says what the issue asks; parse errors are caught."""

from __future__ import annotations

import pytest

from xiaozhi_hub.models import (DEFAULT_ASR_WHISPER, DEFAULT_LLM, DEFAULT_TTS, VOSK_BY_LANGUAGE, ManifestError,
                                load_manifest, parse_manifest)


def test_repository_manifest_loads_and_every_entry_is_complete():
    manifest = load_manifest()
    assert len(manifest.entries) >= 10
    for e in manifest.entries:
        assert e.role in ("asr", "llm", "tts", "vad")
        assert e.language and e.license and e.engine
        if e.source.type == "url":
            for f in e.source.files:
                assert f.url and f.url.startswith("https://")
        if e.source.type == "registry":
            assert all("==" in r for r in e.source.requirements), "registry packages are pinned"


def test_defaults_are_the_registry_models_of_the_issue():
    manifest = load_manifest()
    defaults = {e.id for e in manifest.defaults()}
    assert defaults == {DEFAULT_ASR_WHISPER, DEFAULT_LLM, DEFAULT_TTS}
    assert all(manifest.get(i).source.type == "registry" for i in defaults)   # installable offline-from-hubs
    for model_id in VOSK_BY_LANGUAGE.values():
        assert manifest.get(model_id).engine == "vosk"


def test_real_world_sources_are_known_with_hashes_where_published():
    manifest = load_manifest()
    expected = {"vosk-small-en-us-0.15", "vosk-small-cn-0.22", "piper-en_US-lessac-medium", "piper-en_US-amy-medium",
                "piper-zh_CN-huayan-medium", "qwen2.5-0.5b-instruct-q4_k_m", "qwen2.5-1.5b-instruct-q4_k_m"}
    assert expected <= set(manifest.ids())
    unverified = {e.id for e in manifest.entries if not e.verified}
    assert unverified == {"vosk-small-cn-0.22"}       # the only one without a confirmed sha256


@pytest.mark.parametrize("bad, message", [
    ({"models": [{"id": "a", "role": "sing", "source": {"type": "url"}}]}, "role"),
    ({"models": [{"id": "../x", "role": "asr", "source": {"type": "url"}}]}, "plain name"),
    ({"models": [{"id": "a", "role": "asr", "source": {"type": "ftp"}}]}, "source.type"),
    ({"models": [{"id": "a", "role": "asr", "source": {"type": "url", "files": [{"url": "ftp://x", "path": "p"}]}}]},
     "http"),
    ({"models": [{"id": "a", "role": "asr", "source": {"type": "url", "files": [
        {"url": "https://x/y", "path": "p", "sha256": "abc"}]}}]}, "64 lowercase hex"),
    ({"models": [{"id": "a", "role": "asr", "source": {"type": "url", "files": [
        {"url": "https://x/y", "path": "../../etc/passwd"}]}}]}, "inside the model folder"),
    ({"models": [{"id": "a", "role": "asr", "source": {"type": "registry", "files": []}}]}, "requirements"),
    ({"models": [{"id": "a", "role": "asr", "source": {"type": "builtin"}},
                 {"id": "a", "role": "asr", "source": {"type": "builtin"}}]}, "duplicate"),
])
def test_malformed_manifests_are_rejected(bad, message):
    with pytest.raises(ManifestError, match=message):
        parse_manifest(bad)


def test_the_manifest_ships_inside_the_wheel(tmp_path):
    """A non-editable install (the add-on image) must find the manifest without --manifest."""
    import json
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(root)], check=True, capture_output=True, timeout=240)
    (wheel,) = tmp_path.glob("xiaozhi_hub-*.whl")
    with zipfile.ZipFile(wheel) as z:
        shipped = json.loads(z.read("xiaozhi_hub/models/manifest.json"))
    assert shipped == json.loads((root / "xiaozhi_hub" / "models" / "manifest.json").read_text())
