"""Tests for xiaozhi_hub.net: OTA, activation, firmware store, devices, mDNS."""
