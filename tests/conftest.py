"""Top-level test configuration, shared by every layer.

Kept minimal on purpose: each layer's fixtures live in its own conftest
(``tests/integration/conftest.py`` starts the real Synapse).
"""
