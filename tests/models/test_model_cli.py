"""``xiaozhi-hub models ...`` and ``init-config`` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xiaozhi_hub.__main__ import main
from xiaozhi_hub.settings import load


def test_init_config_writes_a_valid_commented_file_and_never_overwrites(tmp_path: Path, capsys):
    out = tmp_path / "hub.yaml"
    assert main(["init-config", "--output", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("#") and "whisper-base" in text and "smollm2-135m-instruct" in text
    settings = load(out, environ={})
    assert (settings.server.ws_port, settings.server.http_port) == (8000, 8003)
    assert (settings.asr.provider, settings.asr.language, settings.asr.model) == ("whisper", "en", "whisper-base")
    # llm.model stays unset, so the hub loads whatever `models install --defaults` chose.
    assert (settings.llm.provider, settings.llm.model) == ("llamacpp", None)
    assert (settings.tts.provider, settings.tts.voice) == ("piper", "piper-en_US-joe-medium")

    out.write_text("server: {ws_port: 9000}\n")
    assert main(["init-config", "--output", str(out)]) == 1
    assert out.read_text() == "server: {ws_port: 9000}\n"
    assert "not overwriting" in capsys.readouterr().err


def test_init_config_refuses_config_yaml(tmp_path: Path):
    assert main(["init-config", "--output", str(tmp_path / "config.yaml")]) == 2
    assert not (tmp_path / "config.yaml").exists()


def test_models_list_json_shows_status_per_model(tmp_path: Path, capsys):
    assert main(["models", "--models-dir", str(tmp_path), "list", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["whisper-base"]["status"] == "missing" and rows["whisper-base"]["default"]
    assert rows["vosk-small-cn-0.22"]["verified"] is False
    assert rows["webrtcvad"]["status"] == "builtin"


def test_models_install_unknown_id_and_unverified_fail_with_one_line(tmp_path: Path, capsys):
    assert main(["models", "--models-dir", str(tmp_path), "install", "no-such-model"]) == 1
    assert "unknown model id(s): no-such-model" in capsys.readouterr().err
    assert main(["models", "--models-dir", str(tmp_path), "install", "vosk-small-cn-0.22"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-verify" in err[0] and "asr.model: /path/to/model" in err[0]


def test_llm_size_goes_with_defaults(tmp_path: Path, capsys):
    assert main(["models", "--models-dir", str(tmp_path), "install", "--llm-size", "small", "whisper-base"]) == 2
    assert "--llm-size goes with --defaults" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_models_verify_and_remove_on_an_empty_folder(tmp_path: Path, capsys):
    assert main(["models", "--models-dir", str(tmp_path), "verify"]) == 0
    assert "no installed models" in capsys.readouterr().out
    assert main(["models", "--models-dir", str(tmp_path), "verify", "whisper-base"]) == 1
    assert "FAIL whisper-base: missing" in capsys.readouterr().out
    assert main(["models", "--models-dir", str(tmp_path), "remove", "whisper-base"]) == 0
    assert "not installed" in capsys.readouterr().out


def test_models_needs_an_action():
    with pytest.raises(SystemExit) as info:
        main(["models"])
    assert info.value.code == 2
