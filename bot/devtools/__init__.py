"""Development tools shared by the demo, the test suite and the benchmarks.

Not part of the service: `helpline-bot run` never imports this package. It needs the
`demo` extra (matrix-synapse) only for :mod:`bot.devtools.synapse` when a server starts.

- :mod:`bot.devtools.synapse` starts, stops and restarts a throw-away homeserver on
  127.0.0.1 (SQLite), by PID.
- :mod:`bot.devtools.users` registers accounts via the shared-secret admin API and wraps
  the admin API calls that tests and the demo use as ground truth.
- :mod:`bot.devtools.client` is an E2EE matrix-nio client: a person as they meet the bot.
  It imports nio outside `bot/matrix/` on purpose: it plays the people, not the bot.
  What its person has seen, and the waits for it, are in :mod:`bot.devtools.seen`.
- :mod:`bot.devtools.runner` writes a bot config and runs the bot in-process or as a
  child process.
- :mod:`bot.devtools.appservice` is a loopback appservice (a bridge) that registers and
  logs in users of its namespace, for the bridge tests.
- :mod:`bot.devtools.faultproxy` sits between the bot and Synapse and breaks on demand
  (5xx with an HTML body, connection resets, delays), for fault tests and benchmarks.
"""
