"""The hub's offline switches (xiaozhi_hub/offline.py) and that the entry point sets them first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from xiaozhi_hub.offline import OFFLINE_ENV, apply


def test_apply_sets_what_is_missing_and_keeps_what_the_user_set():
    env = {"HF_HUB_OFFLINE": "0", "PATH": "/bin"}
    added = apply(env)
    assert "HF_HUB_OFFLINE" not in added and env["HF_HUB_OFFLINE"] == "0"
    assert env["PATH"] == "/bin"
    assert added == {k: v for k, v in OFFLINE_ENV.items() if k != "HF_HUB_OFFLINE"}
    assert {k: env[k] for k in OFFLINE_ENV if k != "HF_HUB_OFFLINE"} == {k: "1" for k in added}
    assert apply(env) == {}


def test_the_command_line_sets_them_before_huggingface_hub_reads_them():
    """`xiaozhi-hub` in a clean environment: huggingface_hub, imported afterwards (as faster-whisper
    does when the hub loads Whisper), sees offline mode and no telemetry."""
    code = ("import contextlib, json, sys\n"
            "from xiaozhi_hub.__main__ import main\n"
            "with contextlib.suppress(SystemExit):\n"
            "    main(['--version'])\n"
            "from huggingface_hub import constants\n"
            "print(json.dumps([constants.HF_HUB_OFFLINE, constants.HF_HUB_DISABLE_TELEMETRY]))\n")
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_ENV}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == [True, True]
