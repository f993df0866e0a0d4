"""Measurement: environment fingerprint and device-class profiles (latency harness and reports build on these)."""
