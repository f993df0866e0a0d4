"""Moved: the device-class table is `edgekit.device_classes` (`edgekit.load` reads it for its default threads, so it
belongs to the sdk layer, not to the timing layer). Only a re-export for callers not yet moved; new code imports
`edgekit.device_classes`. Remove once nothing imports this module."""

from edgekit.device_classes import PROFILES, DeviceClass, detect, guess

__all__ = ["PROFILES", "DeviceClass", "detect", "guess"]
