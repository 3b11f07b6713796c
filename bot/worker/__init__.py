"""The worker: applies inputs to the core one at a time, and carries out the effects in
lanes, one lane per conversation.

Steps (one at a time, in inbox order; `loop.py`): skip an input whose event was handled
before (a replayed sync batch); let the core decide; store the state changes, the effects
(as outbox rows with fresh transaction IDs) and the event ID in ONE transaction; arm the
timers; hand the new rows to their lanes. The last input of a sync batch also saves the
batch's sync token in its transaction. A step whose write fails leaves nothing half done:
the core is rebuilt from what is stored.

Lanes (`lanes.py`): the effects of one conversation (or, for effects addressed to a room
by its ID, a DM or the volunteers' room, of that room) are carried out in order, one at a
time; lanes run side by side, at most `max_in_flight` requests at once. So one
conversation's effect that waits (a send retrying while the homeserver is away, a purge
waiting for the admin API, a slow room creation) never holds up another conversation. A
lane hands each outcome back on the inbox and waits until the worker has recorded it
(`record.py`: the row marked done in the same transaction as what follows from it: the
relay map, the created room as an input to the core), so the conversation's next effect
finds the room its previous one made. An input for a room still being created waits for
it (`held.py`).

Failures (`retry.py`): transient ones (transport, 5xx, 429) are tried again with a capped
backoff, for as long as it takes: nothing is dropped while the homeserver is down, and it
is sent once (the stored transaction ID) and in order when it is back. A refusal is
recorded (a room that could not be made is an input to the core). Anything unexpected (a
bug, a poisoned row) is tried `MAX_UNEXPECTED` times, then parked: kept with its error
class for the operator and `/healthz`, and tried again at the next start.

A crash anywhere leaves either nothing (the event is seen again and handled then) or a
stored step whose outbox is carried out on start, with the same transaction IDs.
"""
