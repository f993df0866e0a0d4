"""Conversion edges between formats and the route planner (one module per edge)."""
