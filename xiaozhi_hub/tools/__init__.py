"""Tools the agent can run: the registry (``registry``), the built-ins (``builtin``: time, timers,
volume, conversation control, home control), timers and alarms (``timers``), the Home Assistant
hook (``home_assistant``) and spoken-number parsing (``spoken``)."""
