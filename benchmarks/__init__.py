"""Timing only: the latency harness, its statistics, the environment fingerprint, the vendors' native benchmark
tools and the reports. It measures models the API layer loaded (edgekit.benchmark in sdk/bench.py); judging
outputs lives in edgekit.checks, device classes in edgekit.device_classes."""
