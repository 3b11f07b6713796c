"""Test harness: a real Synapse on 127.0.0.1 and E2EE matrix-nio test clients.

- :mod:`tests.harness.synapse` starts, stops and restarts a throwaway homeserver.
- :mod:`tests.harness.users` registers accounts via the shared-secret admin API and wraps
  the admin API calls tests use as ground truth.
- :mod:`tests.harness.client` is an E2EE test client (a user as they meet the bot).
"""
