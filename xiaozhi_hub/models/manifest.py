"""The model manifest (``xiaozhi_hub/models/manifest.json``) and how providers find a model on disk.

A model is named in ``hub.yaml`` either by a manifest id (``asr.model: whisper-base``), resolved to
``<models_dir>/<id>/<main>``, or by a filesystem path, used as it is. Keeping both forms means a user
who downloaded a model by hand (or has no network at all) never depends on the installer.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..providers.base import ProviderError
from ..providers.registry import ProviderUnavailable

log = logging.getLogger(__name__)

ROLES = ("asr", "llm", "tts", "vad")
SOURCE_TYPES = ("registry", "url", "builtin")
MARKER = ".installed.json"
# What `models install --defaults` chose per role (written in models_dir, read when a setting is unset).
CHOSEN = ".chosen.json"

# The manifest ships inside the package (package data), so a non-editable install (the add-on
# image, a wheel) finds it too.
DEFAULT_MANIFEST = Path(__file__).resolve().parent / "manifest.json"

# The setting that names each role's model, for messages that tell the user what to edit.
SETTING_KEY = {"asr": "asr.model", "llm": "llm.model", "tts": "tts.voice", "vad": "vad.provider"}


class ManifestError(ValueError):
    """The manifest file is malformed (a bug in the repository, not a user error)."""


@dataclass(frozen=True)
class FileSpec:
    """One file (or directory) of a model.

    Registry sources name where it comes from inside installed packages (``from``: one entry is
    linked, several are concatenated in order); URL sources name the ``url`` and how to unpack it.
    """

    path: str | None = None
    sources: tuple[str, ...] = ()
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    extract: str | None = None          # "zip" | "tar" | None
    strip_root: bool = False

    @property
    def download_name(self) -> str:
        """File name of the download (from the URL), used for the ``.part`` file."""
        assert self.url is not None
        return self.url.rsplit("/", 1)[-1].split("?", 1)[0] or "download"


@dataclass(frozen=True)
class Source:
    type: str
    files: tuple[FileSpec, ...] = ()
    requirements: tuple[str, ...] = ()
    pip_args: tuple[str, ...] = ()
    homepage: str | None = None
    module: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    id: str
    role: str
    engine: str
    language: str
    license: str
    size: int
    source: Source
    main: str = "."
    default: bool = False
    description: str = ""

    @property
    def verified(self) -> bool:
        """True when every downloaded file has a known sha256 (registry files come via pip's hashes)."""
        return all(f.sha256 for f in self.source.files) if self.source.type == "url" else True

    def install_dir(self, models_dir: str | os.PathLike[str]) -> Path:
        return Path(models_dir) / self.id

    def main_path(self, models_dir: str | os.PathLike[str]) -> Path:
        return (self.install_dir(models_dir) / self.main) if self.main != "." else self.install_dir(models_dir)


@dataclass(frozen=True)
class SizeOption:
    """One size of a role's default: the model, the RAM it needs and (optionally) the CPU kinds it suits."""

    name: str
    id: str
    min_ram_mb: int = 0
    machines: tuple[str, ...] = ()     # platform.machine() values, lower case; empty = any
    why: str = ""


@dataclass(frozen=True)
class Choice:
    """How ``models install --defaults`` picks a role's model: sizes in order of preference, then the fallback."""

    role: str
    fallback: str
    sizes: tuple[SizeOption, ...] = ()

    def size(self, name: str) -> SizeOption | None:
        return next((s for s in self.sizes if s.name == name), None)


@dataclass(frozen=True)
class Manifest:
    entries: tuple[ModelEntry, ...] = field(default_factory=tuple)
    path: Path | None = None
    choices: tuple[Choice, ...] = ()

    def choice(self, role: str) -> Choice | None:
        return next((c for c in self.choices if c.role == role), None)

    def get(self, model_id: str) -> ModelEntry:
        for e in self.entries:
            if e.id == model_id:
                return e
        raise KeyError(model_id)

    def __contains__(self, model_id: object) -> bool:
        return any(e.id == model_id for e in self.entries)

    def ids(self, role: str | None = None) -> list[str]:
        return [e.id for e in self.entries if role is None or e.role == role]

    def defaults(self) -> list[ModelEntry]:
        return [e for e in self.entries if e.default]


def _file_spec(raw: Mapping[str, Any], where: str) -> FileSpec:
    try:
        extract = raw.get("extract")
        if extract not in (None, "zip", "tar"):
            raise ManifestError(f"{where}: extract must be zip or tar")
        sha = raw.get("sha256")
        if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            raise ManifestError(f"{where}: sha256 must be 64 lowercase hex digits or null")
        return FileSpec(path=raw.get("path"), sources=tuple(raw.get("from", ())), url=raw.get("url"),
                        sha256=sha, size=raw.get("size"), extract=extract,
                        strip_root=bool(raw.get("strip_root", False)))
    except (TypeError, AttributeError) as err:
        raise ManifestError(f"{where}: {err}") from None


def _entry(raw: Mapping[str, Any]) -> ModelEntry:
    mid = raw.get("id")
    if not isinstance(mid, str) or not mid or "/" in mid or mid.startswith("."):
        raise ManifestError(f"model id {mid!r} is not a plain name")
    role = raw.get("role")
    if role not in ROLES:
        raise ManifestError(f"{mid}: role must be one of {ROLES}")
    src = raw.get("source") or {}
    stype = src.get("type")
    if stype not in SOURCE_TYPES:
        raise ManifestError(f"{mid}: source.type must be one of {SOURCE_TYPES}")
    files = tuple(_file_spec(f, f"{mid}.source.files[{i}]") for i, f in enumerate(src.get("files", ())))
    if stype == "url":
        for f in files:
            if not f.url or not f.url.startswith(("http://", "https://")):
                raise ManifestError(f"{mid}: every url file needs an http(s) url")
            if not f.extract and not f.path:
                raise ManifestError(f"{mid}: a url file that is not an archive needs a path")
    if stype == "registry":
        if not src.get("requirements"):
            raise ManifestError(f"{mid}: a registry source needs requirements")
        for f in files:
            if not f.path or not f.sources:
                raise ManifestError(f"{mid}: registry files need path and from")
    for f in files:
        if f.path and (Path(f.path).is_absolute() or ".." in Path(f.path).parts):
            raise ManifestError(f"{mid}: file path {f.path!r} must stay inside the model folder")
    source = Source(type=stype, files=files, requirements=tuple(src.get("requirements", ())),
                    pip_args=tuple(src.get("pip_args", ())), homepage=src.get("homepage"),
                    module=src.get("module"))
    return ModelEntry(id=mid, role=role, engine=str(raw.get("engine", "")), language=str(raw.get("language", "")),
                      license=str(raw.get("license", "")), size=int(raw.get("size") or 0), source=source,
                      main=str(raw.get("main", ".")), default=bool(raw.get("default", False)),
                      description=str(raw.get("description", "")))


def _choice(role: str, raw: Mapping[str, Any], roles: Mapping[str, str]) -> Choice:
    """One ``choices`` block; every id must be a manifest model of that role."""
    if role not in ROLES:
        raise ManifestError(f"choices.{role}: not a role ({', '.join(ROLES)})")
    try:
        fallback = raw["fallback"]
        sizes = tuple(SizeOption(name=str(name), id=opt["id"], min_ram_mb=int(opt.get("min_ram_mb", 0)),
                                 machines=tuple(str(m).lower() for m in opt.get("machines", ())),
                                 why=str(opt.get("why", "")))
                      for name, opt in (raw.get("sizes") or {}).items())
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ManifestError(f"choices.{role}: needs a fallback id and sizes of {{id, min_ram_mb}} ({err})") from None
    for where, mid in [("fallback", fallback), *((f"sizes.{o.name}", o.id) for o in sizes)]:
        if roles.get(mid) != role:
            raise ManifestError(f"choices.{role}.{where}: {mid!r} is not a {role} model of the manifest")
    if any(o.name == "tiny" for o in sizes):
        raise ManifestError(f"choices.{role}: the size name 'tiny' means the fallback")
    return Choice(role=role, fallback=fallback, sizes=sizes)


def parse_manifest(data: Mapping[str, Any], path: Path | None = None) -> Manifest:
    entries = tuple(_entry(m) for m in data.get("models", ()))
    ids = [e.id for e in entries]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ManifestError(f"duplicate model ids: {', '.join(sorted(dup))}")
    roles = {e.id: e.role for e in entries}
    choices = tuple(_choice(role, raw, roles) for role, raw in (data.get("choices") or {}).items())
    return Manifest(entries=entries, path=path, choices=choices)


_cache: dict[Path, tuple[float, Manifest]] = {}


def load_manifest(path: str | os.PathLike[str] | None = None) -> Manifest:
    """Read and validate the manifest (cached per file and modification time)."""
    p = Path(path) if path is not None else DEFAULT_MANIFEST
    try:
        mtime = p.stat().st_mtime
    except FileNotFoundError:
        raise ManifestError(f"{p}: model manifest not found") from None
    hit = _cache.get(p)
    if hit and hit[0] == mtime:
        return hit[1]
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ManifestError(f"{p}: not valid JSON ({err})") from None
    manifest = parse_manifest(data, p)
    _cache[p] = (mtime, manifest)
    return manifest


def _not_installed(message: str) -> ProviderError:
    """The registry's ProviderUnavailable ("not installed here"), which contract tests turn into a skip."""
    return ProviderUnavailable(message)


def looks_like_path(ref: str) -> bool:
    """A model reference is a path when it has a separator, starts with ~ or ., or has a model suffix."""
    return (os.sep in ref or "/" in ref or ref.startswith(("~", "."))
            or ref.endswith((".gguf", ".onnx", ".bin")))


def read_chosen(models_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The record ``models install --defaults`` left in ``models_dir`` (empty when there is none or it is unreadable)."""
    try:
        data = json.loads((Path(models_dir) / CHOSEN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("id"), str)} \
        if isinstance(data, dict) else {}


def chosen_default(role: str, models_dir: str | os.PathLike[str], manifest: Manifest) -> str | None:
    """The model id the installer chose for ``role``, when it is still in the manifest and installed."""
    rec = read_chosen(models_dir).get(role)
    if rec is None:
        return None
    mid = rec["id"]
    if mid not in manifest or manifest.get(mid).role != role:
        log.warning("%s: %s names %r, which is not a %s model of the manifest; using the built-in default",
                    models_dir, CHOSEN, mid, role)
        return None
    if not manifest.get(mid).main_path(models_dir).exists():
        log.warning("%s model %s (chosen by `models install --defaults`) is not installed any more; "
                    "using the built-in default", role, mid)
        return None
    log.info("%s model %s (chosen by `models install --defaults`: %s)", role, mid, rec.get("reason", ""))
    return mid


def resolve_model(ref: str | None, *, role: str, default_id: str, models_dir: str | os.PathLike[str],
                  manifest: Manifest | None = None) -> Path:
    """Turn a setting value (manifest id, path or None for the default) into a path to load.

    An unset setting means the model ``models install --defaults`` chose for the role (see
    :func:`chosen_default`), else ``default_id``. Raises :class:`ProviderError` with one line that
    names the model and both ways to fix it (the install command, or a path in ``hub.yaml``), so a
    missing model is never a stack trace.
    """
    key = SETTING_KEY.get(role, f"{role}.model")
    if not ref:
        manifest = manifest or load_manifest()
        ref = chosen_default(role, models_dir, manifest) or default_id
    if looks_like_path(ref):
        path = Path(ref).expanduser()
        if not path.exists():
            raise _not_installed(f"{role} model {ref}: no such file or folder (check {key} in hub.yaml, "
                                f"or use a model id: xiaozhi-hub models list)")
        return path
    manifest = manifest or load_manifest()
    try:
        entry = manifest.get(ref)
    except KeyError:
        known = ", ".join(manifest.ids(role)) or "none"
        raise ProviderError(f"{role} model '{ref}' is not in the manifest (known: {known}); "
                            f"or set {key}: /path/to/model in hub.yaml") from None
    if entry.role != role:
        raise ProviderError(f"model '{ref}' has role {entry.role}, not {role} (check {key} in hub.yaml)")
    path = entry.main_path(models_dir)
    if not path.exists():
        raise _not_installed(f"{role} model '{ref}' is not installed (looked in {path}); run: "
                            f"xiaozhi-hub models install {ref}  — or set {key}: /path/to/model in hub.yaml")
    return path
