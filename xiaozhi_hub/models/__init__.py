"""Offline models: the manifest, the installer and how providers find a model.

Public API::

    load_manifest(path=None) -> Manifest
    resolve_model(ref, role=..., default_id=..., models_dir=...) -> Path   # id or path -> file/folder
    Installer(manifest, models_dir).install(entry) / .verify(entry) / .remove(entry) / .status(entry)

    install_choice(installer, manifest, choice, size=...)   # --defaults: the best LLM here, or the fallback

CLI: ``xiaozhi-hub models list|install|verify|remove`` and ``xiaozhi-hub init-config`` (see cli.py).
Note the repository's top-level ``models/`` folder holds the manifest and, git-ignored, the
installed files; this package is the code that reads it.
"""

from __future__ import annotations

from .cli import DEFAULT_CONFIG, register
from .defaults import Machine, install_choice, pick, this_machine
from .download import DownloadError, download, sha256_file
from .installer import Installer, InstallError, run_pip
from .manifest import (DEFAULT_MANIFEST, Choice, FileSpec, Manifest, ManifestError, ModelEntry, Source,
                       chosen_default, load_manifest, looks_like_path, parse_manifest, resolve_model)

# Default manifest ids per provider, used when hub.yaml leaves the model unset and `models install
# --defaults` recorded no other choice (for the LLM: the fallback of the manifest's choices).
DEFAULT_ASR_WHISPER = "whisper-base"
DEFAULT_LLM = "smollm2-135m-instruct"
DEFAULT_TTS = "piper-en_US-joe-medium"
VOSK_BY_LANGUAGE = {"en": "vosk-small-en-us-0.15", "zh": "vosk-small-cn-0.22", "ko": "vosk-ko"}

__all__ = [
    "DEFAULT_ASR_WHISPER", "DEFAULT_CONFIG", "DEFAULT_LLM", "DEFAULT_MANIFEST", "DEFAULT_TTS", "Choice",
    "DownloadError", "FileSpec", "InstallError", "Installer", "Machine", "Manifest", "ManifestError", "ModelEntry",
    "Source", "VOSK_BY_LANGUAGE", "chosen_default", "download", "install_choice", "load_manifest",
    "looks_like_path", "parse_manifest", "pick", "register", "resolve_model", "run_pip", "sha256_file",
    "this_machine",
]
