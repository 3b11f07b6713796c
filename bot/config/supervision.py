"""The `supervision:` section: how supervisors look after volunteers.

`tell_chatter`: whether the chatter is told that a supervisor joined the volunteer
(`bot.core.supervision`).
`debrief_topics`: topics (of `topics:`) after which a volunteer is offered a debrief and
the supervisors are told (`bot.core.care`). Each must be one of `topics`, so that a typo
cannot quietly switch the suggestion off.
"""

from __future__ import annotations

from typing import Any

from bot.config.fields import _bool
from bot.config.model import SupervisionConfig
from bot.config.reader import _Section
from bot.config.sections import _topic
from bot.config.source import _BAD, _show


def _read_supervision(root: _Section, topics: Any) -> SupervisionConfig:
    s = root.section("supervision")
    tell_chatter = s.get("tell_chatter", _bool, default=SupervisionConfig().tell_chatter)
    debrief = s.items("debrief_topics", _topic, default=(), expected="a list of topic names")
    if debrief is not _BAD and topics is not _BAD:
        for index, topic in enumerate(debrief):
            if topic not in topics:
                s.chk.problem(
                    f"{s.path_of('debrief_topics')}[{index}]",
                    "one of the topics in topics: (" + ", ".join(topics) + ")",
                    _show(topic),
                    "a debrief is suggested after a conversation tagged with it, so it "
                    "must be a topic volunteers can tag",
                )
    s.done()
    return SupervisionConfig(tell_chatter=tell_chatter, debrief_topics=debrief)
