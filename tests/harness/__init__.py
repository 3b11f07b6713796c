"""Test harness: the reusable parts live in :mod:`bot.devtools` (shared with the demo).

The modules here re-export them under their old names, so that code written against
``tests.harness.*`` keeps working; new code imports ``bot.devtools.*`` directly.
"""
