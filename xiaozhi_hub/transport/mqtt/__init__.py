"""The MQTT+UDP device transport (docs/mqtt-udp.md): the device MQTT endpoint (:mod:`.endpoint`,
:mod:`.packets`), per-device credentials (:mod:`.credentials`), the UDP audio socket (:mod:`.udp`,
:mod:`.crypto`), a device's sessions (:mod:`.device`, :mod:`.channel`) and the service (:mod:`.service`)."""
