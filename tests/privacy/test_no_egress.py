"""Issue 15: nothing leaves the home. The hub with the default models, started as a user starts it,
holds two spoken turns and idles 25 s in a network namespace with only loopback; a resolver that
logs every lookup, listeners on :80/:443 and a capture of every packet on ``lo`` (see netwatch.py)
must see no lookup outside ``.local`` and no connection to any address outside loopback.

Needs root and util-linux ``unshare`` (skipped otherwise, with the reason), and the default models
(``make test`` installs them). Before the fix (onnxruntime 1.32.0) this failed with lines such as
``dns AAAA mobile.events.data.microsoft.com`` and ``connect tcp to ::1:443: TLS ClientHello, SNI
mobile.events.data.microsoft.com``, from the hub and from the test's own Piper step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xiaozhi_hub.offline import OFFLINE_ENV

from .sandbox import unavailable

pytestmark = pytest.mark.models

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = ROOT / "models" / "installed"
DEFAULTS = ("whisper-base", "smollm2-135m-instruct", "piper-en_US-joe-medium")
IDLE_S = 25.0


def need_sandbox_and_models() -> None:
    reason = unavailable()
    if reason:
        pytest.skip(f"no-egress check unavailable: {reason}")
    from xiaozhi_hub.models import load_manifest

    manifest = load_manifest()
    missing = [m for m in DEFAULTS if not manifest.get(m).main_path(INSTALLED).exists()]
    if missing:
        pytest.skip(f"models {', '.join(missing)} not installed: run `xiaozhi-hub models install --defaults`")


def run_in_sandbox(tmp_path: Path, *command: str) -> dict:
    """Run ``command`` in the sandbox; the sandbox's report (events, violations)."""
    report = tmp_path / "egress.json"
    # The hub sets its offline switches itself; the test's own Piper step must run without them, so
    # a developer's shell that already has them cannot hide an ONNX Runtime that phones home.
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_ENV}
    proc = subprocess.run([sys.executable, "-m", "tests.privacy.sandbox", "--quiet", "--report", str(report),
                           "--", *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert report.exists(), f"sandbox failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(report.read_text())


def test_the_hub_contacts_nothing_outside_the_home(tmp_path):
    need_sandbox_and_models()
    out = tmp_path / "scenario.json"
    egress = run_in_sandbox(tmp_path, sys.executable, "-m", "tests.privacy.scenario", "--out", str(out),
                            "--idle", str(IDLE_S), "--models-dir", str(INSTALLED))
    assert out.exists(), "the scenario did not finish"
    result = json.loads(out.read_text())
    log = result["hub_log"][-3000:]

    # The hub really served: two spoken turns answered with speech, then the idle period, clean stop.
    assert result["simulator_rc"] == 0, f"{result.get('simulator_log')}\n{log}"
    assert len(result["turns"]) == 2, result["turns"]
    for turn, words in zip(result["turns"], ("volume", "kitchen light")):
        assert words in (turn["stt"] or "").lower(), turn
        assert any(s.strip() for s in turn["sentences"]) and turn["frames"] > 0 and turn["audio_seconds"] > 0.3, turn
    assert "volume now 30" in result["simulator_log"], result["simulator_log"]     # the intent's MCP call
    timings = result["timings"]
    assert timings["idle_end"] - timings["turns"] >= IDLE_S
    assert result["hub_rc"] == 0, log

    # The traps were live (the sandbox's self-test reached each of them) ...
    kinds = {e["kind"] for e in egress["events"] if e["detail"].startswith("(sandbox self-test)")}
    assert kinds == {"dns", "connect", "packet"}, egress["events"]
    # ... and nothing else tried to leave.
    assert egress["violations"] == [], "tried to leave the home:\n" + "\n".join(egress["violations"])


def test_the_rest_of_the_stack_contacts_only_what_it_is_given(tmp_path):
    """huggingface_hub under the hub's offline switches, Vosk, paho-mqtt with a local Mosquitto."""
    need_sandbox_and_models()
    out = tmp_path / "stack.json"
    egress = run_in_sandbox(tmp_path, sys.executable, "-m", "tests.privacy.stack", "--out", str(out),
                            "--idle", "10", "--models-dir", str(INSTALLED))
    steps = json.loads(out.read_text())["steps"]
    assert steps["huggingface_hub"].startswith("ok: refused"), steps
    for name in ("vosk", "paho-mqtt"):
        assert steps[name] == "ok" or steps[name].startswith("skipped"), steps
    assert egress["violations"] == [], "tried to leave the home:\n" + "\n".join(egress["violations"])
