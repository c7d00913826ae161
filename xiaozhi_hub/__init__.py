"""xiaozhi-hub: a fully local voice-assistant hub for stock xiaozhi ESP32 devices."""

__version__ = "0.1.0"
