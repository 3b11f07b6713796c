"""`helpline-bot report`: the anonymous statistics as CSV files, charts and a summary.

`figures` (the tables, with small numbers hidden), `summary` and `texts` are pure;
`charts` builds matplotlib Figures from the figures alone; `run` reads the database
read-only (`bot.storage.snapshot`) and writes the files.
"""
