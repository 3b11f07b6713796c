"""Benchmarks: they print figures and never assert times. Not part of `.ci/run`."""
