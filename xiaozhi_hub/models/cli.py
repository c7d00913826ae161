"""``xiaozhi-hub models list|install|verify|remove`` and ``xiaozhi-hub init-config``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from ..settings import Settings, add_common_flags
from .defaults import SIZES, install_choice
from .installer import Installer, InstallError
from .manifest import Manifest, ManifestError, ModelEntry, load_manifest, read_chosen


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("models", help="list, install, verify and remove offline models",
                              description="Offline models from the manifest (xiaozhi_hub/models/manifest.json), installed under models_dir.")
    add_common_flags(p, suppress=True)
    p.add_argument("--manifest", metavar="FILE", default=None, help="manifest to use (default: the one shipped in xiaozhi_hub/models/)")
    p.add_argument("--models-dir", metavar="DIR", default=None, help="install folder (default: models_dir of hub.yaml)")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="show known models and whether they are installed")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_cmd_list)

    ins = sub.add_parser("install", help="install models by id (resumable, verified)")
    ins.add_argument("ids", nargs="*", metavar="ID")
    ins.add_argument("--defaults", action="store_true",
                     help="also install the default models (whisper-base, piper-en_US-joe-medium and the best LLM "
                          "this machine can get: Qwen2.5 1.5B or 0.5B from Hugging Face, else smollm2-135m-instruct)")
    ins.add_argument("--llm-size", choices=SIZES, default="auto",
                     help="with --defaults: the LLM to try; auto (default) picks by RAM and CPU: large = "
                          "Qwen2.5 1.5B (a mini-PC), small = 0.5B (a Raspberry Pi), tiny = smollm2 only, no download")
    ins.add_argument("--force", action="store_true", help="reinstall even when installed")
    ins.add_argument("--no-verify", action="store_true",
                     help="accept downloads that have no known sha256 (prints the hash it got)")
    ins.set_defaults(func=_cmd_install)

    ver = sub.add_parser("verify", help="check installed files against their sizes and hashes")
    ver.add_argument("ids", nargs="*", metavar="ID", help="default: every installed model")
    ver.set_defaults(func=_cmd_verify)

    rm = sub.add_parser("remove", help="delete an installed model (registry packages stay in the venv)")
    rm.add_argument("ids", nargs="+", metavar="ID")
    rm.set_defaults(func=_cmd_remove)

    init = subparsers.add_parser("init-config", help="write a default, commented hub.yaml",
                                 description="Write a hub.yaml for the default offline models; never overwrites.")
    add_common_flags(init, suppress=True)
    init.add_argument("--output", "-o", metavar="FILE", default="hub.yaml", help="file to write (default hub.yaml)")
    init.set_defaults(func=_cmd_init_config)


def _context(args: argparse.Namespace, settings: Settings) -> tuple[Manifest, Installer]:
    manifest = load_manifest(args.manifest)
    models_dir = args.models_dir or settings.models_dir
    installer = Installer(manifest, models_dir, verify=not getattr(args, "no_verify", False))
    return manifest, installer


def _lookup(manifest: Manifest, ids: list[str]) -> list[ModelEntry]:
    unknown = [i for i in ids if i not in manifest]
    if unknown:
        raise InstallError(f"unknown model id(s): {', '.join(unknown)} (see: xiaozhi-hub models list)")
    return [manifest.get(i) for i in ids]


def _human(n: int) -> str:
    if n <= 0:
        return "-"
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    try:
        manifest, installer = _context(args, settings)
    except ManifestError as err:
        print(f"xiaozhi-hub: {err}", file=sys.stderr)
        return 1
    chosen = read_chosen(installer.models_dir)
    rows: list[dict[str, Any]] = [
        {"id": e.id, "role": e.role, "engine": e.engine, "language": e.language, "size": e.size,
         "license": e.license, "source": e.source.type, "verified": e.verified, "default": e.default,
         "chosen": chosen.get(e.role, {}).get("id") == e.id,
         "status": installer.status(e), "path": str(e.main_path(installer.models_dir))}
        for e in manifest.entries]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'ID':32} {'ROLE':4} {'LANG':5} {'SIZE':>7}  {'SOURCE':8} {'STATUS':9} LICENSE")
    for r in rows:
        flag = "*" if r["default"] else (" " if r["verified"] else "!")
        print(f"{r['id'] + flag:32} {r['role']:4} {r['language']:5} {_human(r['size']):>7}  "
              f"{r['source']:8} {r['status']:9} {r['license']}")
    print(f"\n* default model   ! no known sha256 (install needs --no-verify)   folder: {installer.models_dir}")
    for role, rec in sorted(chosen.items()):
        print(f"{role} model when {role}.model is unset: {rec['id']} ({rec.get('reason', '')})")
    return 0


def _context_and_entries(args: argparse.Namespace, settings: Settings) -> tuple[Any, Any, list[Any]] | None:
    """Manifest, installer and the entries named on the command line; None (after a message) on error."""
    try:
        manifest, installer = _context(args, settings)
        return manifest, installer, _lookup(manifest, list(args.ids))
    except (ManifestError, InstallError) as err:
        print(f"xiaozhi-hub: {err}", file=sys.stderr)
        return None


def _cmd_install(args: argparse.Namespace, settings: Settings) -> int:
    looked_up = _context_and_entries(args, settings)
    if looked_up is None:
        return 1
    manifest, installer, entries = looked_up
    if args.llm_size != "auto" and not args.defaults:
        print("xiaozhi-hub: --llm-size goes with --defaults (to install one model, name its id)", file=sys.stderr)
        return 2
    if args.defaults:
        entries = [*manifest.defaults(), *(e for e in entries if not e.default)]
    if not entries:
        print("xiaozhi-hub: name model ids to install, or --defaults", file=sys.stderr)
        return 2
    failed = 0
    chosen_roles: set[str] = set()
    for entry in entries:
        choice = manifest.choice(entry.role) if args.defaults and entry.default else None
        if choice is not None and entry.role in chosen_roles:
            continue
        try:
            if choice is not None:       # the role's best model for this machine, or its fallback
                chosen_roles.add(entry.role)
                asyncio.run(install_choice(installer, manifest, choice, size=args.llm_size, force=args.force))
                continue
            path = asyncio.run(installer.install(entry, force=args.force))
        except InstallError as err:
            print(f"xiaozhi-hub: {err}", file=sys.stderr)
            failed += 1
            continue
        except KeyboardInterrupt:
            print(f"\nxiaozhi-hub: {entry.id}: interrupted; run the same command again to resume", file=sys.stderr)
            return 130
        print(f"{entry.id}: installed at {path}")
    return 1 if failed else 0


def _cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    try:
        manifest, installer = _context(args, settings)
        entries = _lookup(manifest, list(args.ids)) if args.ids else [
            e for e in manifest.entries if installer.status(e) in ("installed", "broken")]
    except (ManifestError, InstallError) as err:
        print(f"xiaozhi-hub: {err}", file=sys.stderr)
        return 1
    bad = 0
    for entry in entries:
        problems = installer.verify(entry)
        if problems:
            bad += 1
            for p in problems:
                print(f"FAIL {p}")
        else:
            print(f"ok   {entry.id}")
    if not entries:
        print("no installed models (install with: xiaozhi-hub models install --defaults)")
    return 1 if bad else 0


def _cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    looked_up = _context_and_entries(args, settings)
    if looked_up is None:
        return 1
    manifest, installer, entries = looked_up
    for entry in entries:
        if installer.remove(entry):
            extra = ""
            if entry.source.type == "registry":
                extra = f" (pip package kept; free it with: pip uninstall {' '.join(r.split('==')[0] for r in entry.source.requirements)})"
            print(f"{entry.id}: removed{extra}")
        else:
            print(f"{entry.id}: not installed")
    return 0


DEFAULT_CONFIG = """\
# xiaozhi-hub configuration (written by `xiaozhi-hub init-config`).
# Every key is optional; the values below are the defaults for a fully offline hub.
# Override any key with XIAOZHI_<SECTION>__<KEY>=value, e.g. XIAOZHI_ASR__LANGUAGE=zh.

server:
  host: 0.0.0.0
  ws_port: 8000        # devices connect to ws://<this machine>:8000/xiaozhi/v1/
  http_port: 8003      # OTA / activation: http://<this machine>:8003/xiaozhi/ota/

# Models are named by manifest id (see `xiaozhi-hub models list`, installed with
# `xiaozhi-hub models install ID`) or by a path, e.g. model: /srv/models/my-model.gguf
models_dir: models/installed

asr:
  provider: whisper    # whisper (batch, faster-whisper) | vosk (streaming)
  model: whisper-base  # vosk: vosk-small-en-us-0.15, vosk-small-cn-0.22, vosk-ko, or a model folder
  language: en         # a language code (en, zh, ...) or auto (Whisper detects it; slower)
  beam_size: 1         # 1 is fastest; 5 is slightly more accurate
  threads: 2
  early_decode_ms: 150 # after this much silence, before the end of speech: whisper starts decoding,
                       # vosk starts the answer on its partial transcript (kept if the final one agrees; 0 = off)
  # recognizer_pool: 2 # vosk: warm recognizers kept for reuse

llm:
  provider: llamacpp   # llamacpp (in process) | openai (llama-server, Ollama, vLLM: set base_url)
  # model: qwen2.5-0.5b-instruct-q4_k_m   # unset: the model `xiaozhi-hub models install --defaults` chose
                       # (Qwen2.5 1.5B or 0.5B where it could be downloaded, else smollm2-135m-instruct;
                       # `xiaozhi-hub models list` says which), or another manifest id, or a .gguf path
  # base_url: http://127.0.0.1:8080/v1   # provider openai only; model = the server's model name
  threads: 2
  context_tokens: 2048
  max_tokens: 160
  temperature: 0.6
  max_wait: 8.0        # seconds a device may wait for the LLM before it hears a "busy" answer

tts:
  provider: piper
  voice: piper-en_US-joe-medium  # piper-en_US-lessac-medium, piper-en_US-amy-medium, piper-zh_CN-huayan-medium, or an .onnx path
  length_scale: 1.0    # > 1 speaks slower

# "Say this" (HTTP API `xiaozhi-hub say`, MQTT, Home Assistant, timers) for a device that is not connected.
announce:
  ttl_seconds: 3600    # queued this long at most, then reported expired
  max_queued: 20       # per device; a new one pushes out the oldest

# Home automations over MQTT (docs/mqtt.md): commands, events, Home Assistant MQTT discovery.
mqtt:
  host: ""             # your broker, e.g. 192.168.1.10 or core-mosquitto; empty = MQTT off
  port: 1883
  # username: hub
  # password: secret   # or XIAOZHI_MQTT__PASSWORD; never logged
  tls: false
  base_topic: xiaozhi
  discovery: true      # devices appear in Home Assistant through MQTT discovery

# The hub's speech recognition and voices for Home Assistant's Assist (Wyoming protocol).
wyoming:
  enabled: true
  port: 10300

# Devices on the firmware's MQTT+UDP transport (docs/mqtt-udp.md); WebSocket is the default.
devices:
  transport: websocket # websocket | mqtt (per device: `xiaozhi-hub devices transport ID mqtt`)
"""


def _cmd_init_config(args: argparse.Namespace, settings: Settings) -> int:
    out = Path(args.output)
    if out.name == "config.yaml":
        print("xiaozhi-hub: the hub's file is hub.yaml (config.yaml belongs to the Home Assistant add-on loader)",
              file=sys.stderr)
        return 2
    if out.exists():
        print(f"xiaozhi-hub: {out} exists; not overwriting it (remove it first to start over)", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(out, "x", encoding="utf-8") as f:   # "x": never clobber a file created meanwhile
            f.write(DEFAULT_CONFIG)
    except FileExistsError:
        print(f"xiaozhi-hub: {out} exists; not overwriting it", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0
