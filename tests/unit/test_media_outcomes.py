"""What the worker makes of a relayed attachment's outcome (`bot.worker.record.follow_up`):
bytes refused become `MediaRefused` for the sender's room; a copy uploaded and then
refused or lost is handled as the send alone would be."""

from __future__ import annotations

from bot.core.events import MediaRefused, RelayMedia, Removed, RoomRef
from bot.core.ids import EventID, OfferID, RoomID, SessionID, UserID
from bot.core.media import Attachment, MediaProblem
from bot.core.model import Role
from bot.outcomes import Lost, MediaRejected, MediaRelayed, Refused, Sent
from bot.worker.record import follow_up

CHATTER = RoomRef(SessionID(3), Role.CHATTER)
VOLUNTEER = RoomRef(SessionID(3), Role.VOLUNTEER, OfferID(1))
EFFECT = RelayMedia(
    VOLUNTEER, Attachment("mxc://hs/a", "k", "iv", "h", "m.image"), EventID("$src"), CHATTER
)
BOT = UserID("@bot:hs")


def test_refused_bytes_are_told_to_the_sender() -> None:
    for problem in MediaProblem:
        assert follow_up(EFFECT, MediaRejected(problem)) == MediaRefused(CHATTER, problem)


def test_a_copy_that_went_out_needs_nothing_more_from_the_core() -> None:
    sent = Sent(RoomID("!v:hs"), EventID("$copy"))
    assert follow_up(EFFECT, MediaRelayed("mxc://hs/copy", BOT, sent)) is None
    assert follow_up(EFFECT, MediaRelayed("mxc://hs/copy", BOT, Refused("M_FORBIDDEN"))) is None


def test_a_copy_uploaded_into_a_room_the_bot_lost_reports_the_loss() -> None:
    lost = Lost(RoomID("!v:hs"))
    assert follow_up(EFFECT, MediaRelayed("mxc://hs/copy", BOT, lost)) == Removed(lost.room)
