"""The installer: URL archives and files, registry packages assembled from parts, verify and remove."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, Sequence

import pytest

from xiaozhi_hub.models import Installer, InstallError, parse_manifest, resolve_model
from xiaozhi_hub.models.manifest import MARKER
from xiaozhi_hub.providers.base import ProviderError

from .conftest import FileServer, make_package, sha


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


ARCHIVE = zip_bytes({"vosk-tiny/am/final.mdl": b"acoustic" * 1000, "vosk-tiny/conf/model.conf": b"--x=1\n"})
VOICE = b"onnx" * 5000
VOICE_JSON = b'{"audio": {"sample_rate": 22050}}'


def url_manifest(server: FileServer, *, archive_sha: str | None) -> Any:
    return parse_manifest({"models": [
        {"id": "vosk-tiny", "role": "asr", "engine": "vosk", "language": "en", "license": "Apache-2.0",
         "size": len(ARCHIVE), "main": ".",
         "source": {"type": "url", "files": [{"url": server.url("vosk-tiny.zip"), "sha256": archive_sha,
                                              "size": len(ARCHIVE), "extract": "zip", "strip_root": True}]}},
        {"id": "voice", "role": "tts", "engine": "piper", "language": "en", "license": "MIT",
         "size": len(VOICE), "main": "v.onnx",
         "source": {"type": "url", "files": [
             {"url": server.url("v.onnx"), "sha256": sha(VOICE), "size": len(VOICE), "path": "v.onnx"},
             {"url": server.url("v.onnx.json"), "sha256": sha(VOICE_JSON), "path": "v.onnx.json"}]}},
    ]})


def quiet_installer(manifest: Any, models_dir: Path, **kw: Any) -> Installer:
    return Installer(manifest, models_dir, progress=lambda label: (lambda d, t: None), log=lambda m: None, **kw)


async def test_archive_is_downloaded_verified_unpacked_and_marked(file_server: FileServer, tmp_path: Path):
    file_server.files["vosk-tiny.zip"] = ARCHIVE
    manifest = url_manifest(file_server, archive_sha=sha(ARCHIVE))
    inst = quiet_installer(manifest, tmp_path)
    entry = manifest.get("vosk-tiny")
    assert inst.status(entry) == "missing"
    path = await inst.install(entry)
    assert path == tmp_path / "vosk-tiny"
    assert (path / "am" / "final.mdl").read_bytes() == b"acoustic" * 1000   # root folder stripped
    assert inst.status(entry) == "installed"
    assert inst.verify(entry) == []
    marker = json.loads((path / MARKER).read_text())
    assert marker["downloads"] == {"vosk-tiny.zip": sha(ARCHIVE)}
    assert not (tmp_path / ".downloads" / "vosk-tiny").exists()       # archive not kept
    assert resolve_model("vosk-tiny", role="asr", default_id="x", models_dir=tmp_path, manifest=manifest) == path

    (path / "am" / "final.mdl").write_bytes(b"tampered")
    assert any("final.mdl" in p for p in inst.verify(entry))
    assert inst.remove(entry) and inst.status(entry) == "missing"


async def test_plain_files_land_under_their_names(file_server: FileServer, tmp_path: Path):
    file_server.files.update({"v.onnx": VOICE, "v.onnx.json": VOICE_JSON})
    manifest = url_manifest(file_server, archive_sha=None)
    inst = quiet_installer(manifest, tmp_path)
    main = await inst.install(manifest.get("voice"))
    assert main.read_bytes() == VOICE and (main.parent / "v.onnx.json").read_bytes() == VOICE_JSON
    # A second install is a no-op: nothing is requested again.
    before = len(file_server.requests)
    await inst.install(manifest.get("voice"))
    assert len(file_server.requests) == before


async def test_unverifiable_download_needs_no_verify(file_server: FileServer, tmp_path: Path):
    file_server.files["vosk-tiny.zip"] = ARCHIVE
    manifest = url_manifest(file_server, archive_sha=None)
    entry = manifest.get("vosk-tiny")
    with pytest.raises(InstallError, match="--no-verify") as info:
        await quiet_installer(manifest, tmp_path).install(entry)
    assert "asr.model: /path/to/model" in str(info.value)
    assert file_server.requests == []
    logs: list[str] = []
    inst = Installer(manifest, tmp_path, verify=False, progress=lambda label: (lambda d, t: None), log=logs.append)
    await inst.install(entry)
    assert inst.status(entry) == "installed"
    assert any(sha(ARCHIVE) in line and "UNVERIFIED" in line for line in logs)


async def test_hash_mismatch_keeps_the_old_model_and_says_how_to_supply_it(file_server: FileServer, tmp_path: Path):
    file_server.files["vosk-tiny.zip"] = ARCHIVE
    manifest = url_manifest(file_server, archive_sha="f" * 64)
    with pytest.raises(InstallError) as info:
        await quiet_installer(manifest, tmp_path).install(manifest.get("vosk-tiny"))
    msg = str(info.value)
    assert msg.startswith("vosk-tiny: download of") and "sha256 mismatch" in msg and "hub.yaml" in msg
    assert "\n" not in msg
    assert not (tmp_path / "vosk-tiny").exists()
    assert not list(tmp_path.glob(".staging-*"))


async def test_offline_install_error_is_one_line(tmp_path: Path):
    manifest = parse_manifest({"models": [{"id": "m", "role": "llm", "engine": "llamacpp", "language": "en",
                                           "license": "x", "size": 1, "main": "m.gguf", "source": {
        "type": "url", "files": [{"url": "http://127.0.0.1:9/m.gguf", "sha256": "a" * 64, "path": "m.gguf"}]}}]})
    with pytest.raises(InstallError, match=r"^m: download of http://127.0.0.1:9/m.gguf failed: cannot reach") as info:
        await quiet_installer(manifest, tmp_path).install(manifest.get("m"))
    assert "llm.model: /path/to/model in hub.yaml" in str(info.value)


# ---------------------------------------------------------------------------- registry sources


PART1, PART2 = b"A" * 70_000, b"B" * 50_000


def registry_manifest(version: str = "1.0.0") -> Any:
    return parse_manifest({"models": [{
        "id": "split", "role": "asr", "engine": "whisper", "language": "multi", "license": "MIT", "size": 1,
        "main": ".", "source": {
            "type": "registry", "requirements": [f"xzt-part1=={version}", f"xzt-part2=={version}"],
            "pip_args": ["--no-deps"],
            "files": [
                {"path": "model.bin", "from": ["xzt_part1/data/model.bin.part1", "xzt_part2/data/model.bin.part2"],
                 "sha256": sha(PART1 + PART2), "size": len(PART1 + PART2)},
                {"path": "config.json", "from": ["xzt_part1/data/config.json"]},
                {"path": "model", "from": ["xzt_part2/data"]}]}}]})


async def test_registry_install_runs_pip_then_links_and_assembles(site: Path, tmp_path: Path):
    calls: list[list[str]] = []

    def fake_pip(args: Sequence[str]) -> int:
        calls.append(list(args))
        make_package(site, "xzt-part1", "1.0.0", {"data/model.bin.part1": PART1, "data/config.json": b"{}"})
        make_package(site, "xzt-part2", "1.0.0", {"data/model.bin.part2": PART2})
        return 0

    manifest = registry_manifest()
    inst = quiet_installer(manifest, tmp_path / "models", pip=fake_pip)
    entry = manifest.get("split")
    folder = await inst.install(entry)
    assert calls == [["--no-deps", "xzt-part1==1.0.0", "xzt-part2==1.0.0"]]
    assert (folder / "model.bin").read_bytes() == PART1 + PART2          # cat part1 part2 > model.bin
    assert not (folder / "model.bin").is_symlink()
    assert (folder / "config.json").is_symlink() and (folder / "config.json").read_bytes() == b"{}"
    assert (folder / "model" / "model.bin.part2").exists()              # a whole package folder, linked
    assert inst.verify(entry) == []

    # Installed packages are not installed again (works offline), and a dangling link is reported.
    await inst.install(entry, force=True)
    assert len(calls) == 1
    (site / "xzt_part1" / "data" / "config.json").unlink()
    assert any("config.json is missing" in p for p in inst.verify(entry))
    assert inst.status(entry) == "installed"


async def test_registry_install_fails_cleanly_when_pip_fails(site: Path, tmp_path: Path):
    manifest = registry_manifest("9.9.9")
    inst = quiet_installer(manifest, tmp_path, pip=lambda args: 1)
    with pytest.raises(InstallError, match=r"^split: pip could not install xzt-part1==9.9.9") as info:
        await inst.install(manifest.get("split"))
    assert "asr.model: /path/to/model in hub.yaml" in str(info.value)
    assert not (tmp_path / "split").exists()


async def test_assembled_file_with_wrong_hash_is_rejected(site: Path, tmp_path: Path):
    make_package(site, "xzt-part1", "1.0.0", {"data/model.bin.part1": PART1, "data/config.json": b"{}"})
    make_package(site, "xzt-part2", "1.0.0", {"data/model.bin.part2": b"corrupt"})
    manifest = registry_manifest()
    with pytest.raises(InstallError, match="expected"):
        await quiet_installer(manifest, tmp_path, pip=lambda a: 0).install(manifest.get("split"))


def test_missing_model_names_the_id_and_both_fixes(tmp_path: Path):
    from xiaozhi_hub.providers.registry import ProviderUnavailable

    manifest = registry_manifest()
    with pytest.raises(ProviderUnavailable) as info:
        resolve_model(None, role="asr", default_id="split", models_dir=tmp_path, manifest=manifest)
    msg = str(info.value)
    assert "'split' is not installed" in msg
    assert "xiaozhi-hub models install split" in msg and "asr.model: /path/to/model" in msg
    with pytest.raises(ProviderUnavailable, match="no such file"):
        resolve_model(str(tmp_path / "nope.gguf"), role="llm", default_id="x", models_dir=tmp_path, manifest=manifest)
    with pytest.raises(ProviderError, match="not in the manifest"):
        resolve_model("unknown-id", role="asr", default_id="x", models_dir=tmp_path, manifest=manifest)
    with pytest.raises(ProviderError, match="has role asr, not tts"):
        resolve_model("split", role="tts", default_id="x", models_dir=tmp_path, manifest=manifest)
    given = tmp_path / "my.gguf"
    given.write_bytes(b"x")
    assert resolve_model(str(given), role="llm", default_id="x", models_dir=tmp_path, manifest=manifest) == given
