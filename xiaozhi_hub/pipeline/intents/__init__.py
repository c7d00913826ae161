"""Fast local intents: common commands matched by sentence templates before the LLM.

Small offline LLMs are slow and call tools unreliably, yet "volume to thirty" or "set a timer for
ten minutes" must work every time and at once. Each intent has sentence templates per language;
a transcript that matches one fully runs a built-in tool and speaks its short confirmation,
without the LLM. Anything not matched goes to the LLM unchanged.

Template syntax (a small subset of Home Assistant's hassil syntax):

* ``(a|b)`` alternatives, ``[a]`` or ``[a|b]`` optional, nesting allowed;
* ``{slot}`` captures a value; its type comes from the name: ``volume``, ``step``, ``value`` are
  numbers, ``duration`` a duration, ``time`` a clock time, ``entity`` a home entity name (it must be
  known to the Home Assistant hook), anything else (``label``) is free text;
* spaces are optional when matching, so one template serves "set the volume" and Chinese written
  with or without spaces.

Matching is deterministic: the language is chosen by the script (any CJK character → ``zh``),
intents are tried in their listed order and templates in theirs, and the first template whose slots
all parse wins. Numbers may be digits or words in either language ("thirty", "三十"). Everything is
precompiled regular expressions, so a match costs well under a millisecond.

Extra templates come from ``intents.sentences_file`` (YAML ``{language: {intent: [template, ...]}}``),
added before the built-in ones of the same intent, or replacing all built-ins with
``intents.replace_builtin``.

Where things are: :mod:`.templates` (the built-in sentences per language and intent),
:mod:`.grammar` (the template syntax → regular expressions), :mod:`.normalize` (language and
normalisation of a transcript), :mod:`.matcher` (matching, slot parsing, the sentences file) and
:mod:`.actions` (which tool call each intent makes).
"""

from .actions import IntentCall, intent_call
from .grammar import SLOT_TYPES, TemplateError, compile_template
from .matcher import IntentMatch, IntentMatcher, load_templates
from .normalize import detect_language, normalize
from .templates import BUILTIN_TEMPLATES

__all__ = ["BUILTIN_TEMPLATES", "SLOT_TYPES", "IntentCall", "IntentMatch", "IntentMatcher", "TemplateError",
           "compile_template", "detect_language", "intent_call", "load_templates", "normalize"]
