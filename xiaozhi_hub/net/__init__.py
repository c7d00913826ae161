"""HTTP API, OTA and firmware, mDNS, device records (and later MQTT)."""
