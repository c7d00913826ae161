"""Everyday questions a tiny LLM gets wrong, answered exactly: arithmetic, unit conversions, dates.

The intents (``pipeline/intents/``) parse the spoken question with the parsers here and call the
tools in :mod:`.tools`; each answers in the user's language. Modules: :mod:`.numbers` (signed and
decimal quantities, numbers as they are said), :mod:`.arithmetic`, :mod:`.units`, :mod:`.dates`.
"""

from .arithmetic import CalcError, calculate, spoken_expression
from .dates import DayRef, parse_day
from .numbers import format_number, parse_quantity
from .tools import everyday_tools
from .units import UNIT_NAMES, UnitError, convert, find_units, pick

__all__ = ["UNIT_NAMES", "CalcError", "DayRef", "UnitError", "calculate", "convert", "everyday_tools", "find_units",
           "format_number", "parse_day", "parse_quantity", "pick", "spoken_expression"]
