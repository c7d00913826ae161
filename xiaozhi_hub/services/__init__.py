"""Services shared by every front door of the hub (HTTP API, MQTT, Wyoming, transports).

- :mod:`.events`: the event bus (typed events, bounded subscribers, a slow one is dropped);
- :mod:`.live`: each device's live state (online, state, volume, last heard/reply), fed by sessions;
- :mod:`.announce`: "say this" with its delivery rules (speak now, or queue in SQLite until the
  device connects, expire, drop);
- :mod:`.admin_token`: the admin token every ``/api/`` request needs;
- :mod:`.component`: the connected Home Assistant component (register flag, home control, conversation);
- :mod:`.control`: set a connected device's volume, stop what it says (rules, not a service object).

Each service is a typed field of :class:`xiaozhi_hub.context.HubContext`.
"""
