"""Your own devices over SSH: a registry of boards (`edgekit device add/list/check/remove`), a runtime-only venv on
each (`edgekit device setup`), a content-addressed cache of pushed files, and `bench`/`validate`/`tune --device`.

The device runs its own `edgekit` (a runtime-only install) with JSON output, so every number is the device
runtime's own; the workstation only pushes files, starts commands with argument lists it builds itself, and reads
JSON back. Nothing from a model file is executed by this protocol (docs/TRUST.md). asyncssh is imported inside
the functions that connect (the `devices` extra).
"""
