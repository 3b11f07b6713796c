"""The web chat: a page on the helpline's site from which someone reaches a volunteer with
no account of their own, end-to-end encrypted in the browser.

- `texts`: the words of the page and of each refusal (no I/O; the config reads it);
- `pow`, `limits`: the account endpoint's protections, with no trace of anyone: a
  stateless signed proof-of-work challenge, a per-address rate limit kept only in memory
  under a key that lives as long as the process, a global cap;
- `accounts`: throw-away accounts made and erased with Synapse's admin API, their IDs kept
  in storage only until erased (a restart must not leave one behind);
- `server`: the listener (static page with a strict CSP, the JSON API).

The README's "Web chat" section is the page's contract with this package.
"""
