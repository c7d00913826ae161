"""The hub's offline environment: switches that keep bundled libraries from contacting anyone.

The hub loads every model from local files and never needs a model hub at run time, so the
libraries that could reach one are told so. Most read these variables once, when they are first
imported (huggingface_hub copies them into module constants; ONNX Runtime latches its telemetry
decision when its environment is created), so :func:`apply` runs first thing in the command line
entry point, before any provider module is imported.

* huggingface_hub (imported by faster-whisper): offline mode, no telemetry, no update checks. A
  model name that is not a local folder then fails at once instead of being downloaded.
* transformers, datasets (not used by the default install; a Piper ``zh`` extra pulls in
  transformers): offline mode.
* ONNX Runtime (Piper voices, faster-whisper's VAD): releases from 1.29 on carry a telemetry client
  that posts to a Microsoft collector every few seconds while sessions run. The ``models`` extra
  pins a release without it (see pyproject.toml); this switch, ONNX Runtime's own opt-out, is the
  second line for an install that brings a newer release anyway.
* ``DO_NOT_TRACK``: the cross-tool opt-out (https://donottrack.sh), honoured by huggingface_hub.

A value the user has already set in the environment wins: these are defaults, not overrides.
"""

from __future__ import annotations

import os
from typing import MutableMapping

OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "ORT_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}


def apply(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set each switch that ``environ`` (default: ``os.environ``) does not already have.

    Returns the ones it set. Call before huggingface_hub, transformers or onnxruntime is imported.
    """
    env = os.environ if environ is None else environ
    added = {k: v for k, v in OFFLINE_ENV.items() if k not in env}
    env.update(added)
    return added
