"""bot.messages: the catalogue is complete for everything the core can say, every text
renders with the params the core passes, and overrides from the config can neither break
rendering nor reach into Python objects."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.core import commands
from bot.core import texts as core_texts
from bot.core.commands import Audience, Command
from bot.core.events import (
    CreateRoom,
    Joined,
    Kind,
    Message,
    Origin,
    RoomCreated,
    Say,
    Text,
    TimerFired,
)
from bot.core.ids import EventID, RoomID, UserID
from bot.core.machine import Helpline
from bot.core.model import Outcome, Policy, TimerKind, VolunteerProfile
from bot.messages import CATALOGUE, COMMON, PARAMS, Texts, fill, placeholders

OUTCOMES = [o.value for o in Outcome]
SHIPPED_CANNED = ["confidentiality", "emergency", "welcome"]  # the canned replies we ship

# Every key the core can emit, with the params it passes: the core's own table (its `_say`
# refuses anything else), and the canned replies a volunteer can send with !say.
CORE_KEYS: dict[str, frozenset[str]] = {
    **core_texts.SAYS,
    **{core_texts.canned_key(name): frozenset() for name in SHIPPED_CANNED},
}

# A value for every param name, as the core would pass it.
SAMPLE: dict[str, Any] = {
    "position": 3,
    "minutes": 15,
    "alias": "Irene",
    "number": 4821,
    "language": "nb",
    "waited": 7,
    "requeued": True,
    "usage": "!språk nb|en",
    "lines": commands.help_lines(Audience.VOLUNTEER, "nb"),
    "length": 5000,
    "limit": 4000,
    "available": ["nb", "en"],
    "waiting": 2,
    "longest_wait_minutes": 12,
    "on_duty": 3,
    "active": 1,
    "offers": 0,
    "ending": 1,
    "unknown": ["tull"],
    "topics": ["angst", "skole"],
    "tags": ["angst"],
    "elapsed": 20,
    "left": 40,
    "extension_left": 30,
    "names": ["confidentiality", "emergency"],
    "lapses": 2,
    "by": "chatter",
    "name": "Irene",
    "until": "2026-03-03 13:00",
    "opens": {"days": 0, "weekday": 0, "day": 2, "month": 3, "hour": 14, "minute": 0},
    "time": "14:00",
    "day": "mandag",
    "date": 2,
    "month": "mars",
    "hour": "14",
    "minute": "00",
    "types": "JPEG, PNG, WebP",
    "server": "alltidhjelp.no",
    "url": "https://chat.alltidhjelp.no",
    "note": "Snakket om skolen; mor vet ikke.",
    # the admins' and the care texts
    "added": 1,
    "removed": 0,
    "keys": ["homeserver", "http"],
    "problems": 2,
    "on_duty_aliases": ["Irene (1)", "Ola (0)"],
    "off_duty_aliases": [],
    "since": "13:00",
    "conversations": 3,
    "open": 1,
}

BRACE = re.compile(r"[{}]")


def _render_all(texts: Texts, lang: str, key: str) -> str:
    return texts.render(Text(key, {n: SAMPLE[n] for n in PARAMS[key]}), lang)


# -- the catalogue -------------------------------------------------------------------------


def test_nb_and_en_have_the_same_keys_and_those_are_documented() -> None:
    assert set(CATALOGUE) == {"nb", "en"}
    assert set(CATALOGUE["nb"]) == set(CATALOGUE["en"]) == set(PARAMS)


def test_the_core_declares_its_keys() -> None:
    for key in ("welcome", "welcome.nobody_on_duty", "staff.alert", "end.chatter.deleted"):
        assert key in CORE_KEYS
    for outcome in Outcome:
        assert core_texts.end_chatter_key(outcome) in CORE_KEYS
        assert core_texts.end_volunteer_key(outcome) in CORE_KEYS
    assert {core_texts.reject_key(o) for o in core_texts.REJECTIONS} == {
        "reject.closed_hours",
        "reject.queue_full",
    }
    with pytest.raises(ValueError, match="not a rejection"):
        core_texts.reject_key(Outcome.COMPLETED)  # not a way to refuse a conversation
    assert len(CORE_KEYS) > 60


def test_the_core_says_nothing_it_has_not_declared() -> None:
    with pytest.raises(core_texts.UndeclaredText):
        core_texts.check("no.such.key", {})
    with pytest.raises(core_texts.UndeclaredText):
        core_texts.check("welcome", {"position": 1})  # "minutes" missing
    with pytest.raises(core_texts.UndeclaredText):
        core_texts.check("held", {"extra": 1})
    core_texts.check("welcome", {"position": 1, "minutes": None})


def test_every_key_the_core_can_emit_has_a_text() -> None:
    missing = sorted(k for k in CORE_KEYS if k not in PARAMS)
    assert missing == []


def test_every_command_has_a_help_text() -> None:
    for spec in commands.TABLE:
        assert f"help.{spec.name}" in PARAMS
    for audience in Audience:
        for lang in ("nb", "en"):
            for _, key in commands.help_lines(audience, lang):
                assert key in PARAMS


def test_every_closing_text_exists_for_every_outcome() -> None:
    for outcome in OUTCOMES:
        assert f"end.chatter.{outcome}" in PARAMS
        assert f"end.volunteer.{outcome}" in PARAMS


def test_the_core_passes_every_documented_param() -> None:
    status_fields = set(Helpline(Policy(volunteers=()), random.Random(0)).status(_T0))
    assert core_texts.SAYS["status"] == status_fields  # !status passes what status() says
    for key, passed in CORE_KEYS.items():
        assert set(PARAMS[key]) <= passed, f"{key}: the core does not pass {PARAMS[key]}"


@pytest.mark.parametrize("lang", ["nb", "en"])
def test_templates_use_only_documented_placeholders(lang: str) -> None:
    for key, template in CATALOGUE[lang].items():
        extra = placeholders(template) - set(PARAMS[key]) - set(COMMON)
        assert not extra, f"{lang}.{key} uses {extra}"
        # Every brace in a template is a placeholder (or an escaped brace).
        assert not BRACE.search(re.sub(r"\{\w+\}|\{\{|\}\}", "", template)), f"{lang}.{key}"


def test_no_text_can_show_who_someone_is() -> None:
    identifying = re.compile(r"user|sender|mxid|matrix|room|event|(^|_)id$|display")
    for key, names in PARAMS.items():
        for name in (*names, *COMMON):
            assert not identifying.search(name), f"{key}: {{{name}}}"


@pytest.mark.parametrize("lang", ["nb", "en"])
def test_every_template_renders_completely_with_its_params(lang: str) -> None:
    texts = Texts()
    for key in PARAMS:
        out = _render_all(texts, lang, key)
        assert out.strip(), key
        assert not BRACE.search(out), f"{lang}.{key}: {out!r}"
        assert out != texts.render(Text("no.such.key"), lang) or key == "fallback", key


@pytest.mark.parametrize("lang", ["nb", "en"])
def test_commands_named_in_texts_exist(lang: str) -> None:
    for key, template in CATALOGUE[lang].items():
        for word in re.findall(r"!([\w-]+)", template):
            assert any(
                isinstance(commands.parse(f"!{word}", a), Command | commands.Usage)
                for a in Audience
            ), f"{lang}.{key} names !{word}"


# -- what the texts must say ---------------------------------------------------------------


def test_emergency_numbers_and_alternatives() -> None:
    for lang in ("nb", "en"):
        emergency = CATALOGUE[lang]["emergency"]
        for number in ("113", "112", "116 111"):
            assert number in emergency
        assert "Alarmtelefonen" in emergency
        alternatives = CATALOGUE[lang]["alternatives"]
        assert "Kirkens SOS" in alternatives
        assert "22 40 00 40" in alternatives
        assert "Mental Helse" in alternatives
        assert "116 123" in alternatives


def test_welcome_and_consent_say_how_to_end_delete_and_accept() -> None:
    nb, en = CATALOGUE["nb"], CATALOGUE["en"]
    for key in ("welcome", "welcome.nobody_on_duty"):
        assert "!slutt" in nb[key]
        assert "!slett" in nb[key]
        assert "{emergency}" in nb[key]
        assert "!end" in en[key]
        assert "!delete" in en[key]
        assert "{emergency}" in en[key]
    assert "{minutes}" in nb["welcome"]
    assert "{position}" in nb["welcome"]
    assert "{alternatives}" in nb["welcome.nobody_on_duty"]
    assert "!ja" in nb["consent"]
    assert "!yes" in en["consent"]


def test_closing_texts() -> None:
    for lang in ("nb", "en"):
        for outcome in OUTCOMES:
            chatter = CATALOGUE[lang][f"end.chatter.{outcome}"]
            assert "{emergency}" in chatter, outcome
            assert "{bot_name}" in chatter, outcome
            volunteer = CATALOGUE[lang][f"end.volunteer.{outcome}"]
            assert "{number}" in volunteer, outcome
            assert "{topics}" in volunteer, outcome
        assert "{alternatives}" in CATALOGUE[lang]["end.chatter.queue_timeout"]
    assert "!tema" in CATALOGUE["nb"]["end.volunteer.completed"]
    assert "!tag" in CATALOGUE["en"]["end.volunteer.completed"]


def test_the_volunteer_is_told_the_commands_on_accept() -> None:
    nb = CATALOGUE["nb"]["accepted.volunteer"]
    for cmd in ("!tid", "!forleng", "!svar", "!tema", "!slutt", "!tilbake", "!hjelp-veileder"):
        assert cmd in nb
    en = CATALOGUE["en"]["accepted.volunteer"]
    for cmd in ("!time", "!extend", "!say", "!tag", "!end", "!handback", "!alert"):
        assert cmd in en


def test_persona_while_waiting_is_the_bot_name() -> None:
    assert Texts(bot_name="Snakk").render(Text("persona.waiting"), "en") == "Snakk"


# -- rendering -----------------------------------------------------------------------------


def test_help_renders_one_line_per_command() -> None:
    texts = Texts()
    lines = commands.help_lines(Audience.VOLUNTEER, "nb")
    out = texts.render(Text("help", {"lines": lines}), "nb")
    assert "!tid — hvor lenge samtalen har vart" in out
    assert "!svar NAVN" not in out
    assert "!svar NAME — send et ferdig svar" in out
    assert "help." not in out
    assert len(out.splitlines()) == 1 + len(lines)


def test_params_lists_none_and_flags() -> None:
    texts = Texts()
    saved = texts.render(Text("tag.saved", {"tags": ["angst", "skole"]}), "en")
    assert "angst, skole" in saved
    assert "?" in texts.render(Text("extend.chatter", {"minutes": None}), "en")
    assert "–" in texts.render(Text("canned.unknown", {"names": []}), "en")
    params = {"number": 1, "language": "nb", "waited": 1, "minutes": 60}
    first = texts.render(Text("accepted.volunteer", {**params, "requeued": False}), "en")
    again = texts.render(Text("accepted.volunteer", {**params, "requeued": True}), "en")
    assert "another volunteer" not in first
    assert "another volunteer" in again
    ended = {"number": 1, "topics": ["angst"]}
    assert "by you" in texts.render(
        Text("end.volunteer.completed", {**ended, "by": "volunteer"}), "en"
    )
    assert "by the chatter" in texts.render(
        Text("end.volunteer.completed", {**ended, "by": "chatter"}), "en"
    )


def test_no_estimate_is_not_shown_as_a_question_mark() -> None:
    texts = Texts()
    for key in ("welcome", "queue.update"):
        out = texts.render(Text(key, {"position": 2, "minutes": None}), "nb")
        assert "?" not in out.replace("akutt?", "")
        assert "nummer 2" in out


def test_unknown_language_falls_back_to_the_default() -> None:
    text = Text("rating.thanks")
    assert Texts().render(text, "se") == CATALOGUE["nb"]["rating.thanks"]
    english = Texts(default_language="en")
    assert english.render(text, "se") == CATALOGUE["en"]["rating.thanks"]
    assert english.render(text, "nb") == CATALOGUE["nb"]["rating.thanks"]


def test_unknown_key_gives_a_generic_sentence() -> None:
    for lang in ("nb", "en", "xx"):
        out = Texts().render(Text("no.such.key", {"x": object()}), lang)
        assert out
        assert "{" not in out


def test_an_override_replaces_a_text_in_one_language_only() -> None:
    texts = Texts({"en": {"held": "Got it, {bot_name} keeps it."}}, bot_name="Alltidhjelp")
    assert texts.render(Text("held"), "en") == "Got it, Alltidhjelp keeps it."
    assert texts.render(Text("held"), "nb") == CATALOGUE["nb"]["held"]
    assert texts.render(Text("rating.thanks"), "en") == CATALOGUE["en"]["rating.thanks"]


def test_a_language_only_in_the_overrides_falls_back_key_by_key() -> None:
    texts = Texts({"nn": {"rating.thanks": "Takk for svaret!"}})
    assert texts.render(Text("rating.thanks"), "nn") == "Takk for svaret!"
    assert texts.render(Text("held"), "nn") == CATALOGUE["nb"]["held"]


@pytest.mark.parametrize(
    "template",
    [
        "{0.__class__}",
        "{x.__dict__}",
        "{number.__class__.__mro__}",
        "{number[0]}",
        "{number!r}",
        "{number:>99999999}",
        "{bot_name.__init__.__globals__}",
        "{",
        "}",
        "{}",
        "{{number}}",
        "{nope}",
    ],
)
def test_a_malicious_or_broken_override_renders_literally(template: str) -> None:
    texts = Texts({"nb": {"extend.done": template}})
    out = texts.render(Text("extend.done", {"minutes": 5, "left": 10}), "nb")
    expected = template.replace("{{", "{").replace("}}", "}")
    assert out == expected


def test_a_placeholder_is_filled_but_a_value_is_never_read_as_a_template() -> None:
    texts = Texts({"nb": {"accepted.chatter": "Hei fra {alias}. {emergency}"}})
    out = texts.render(Text("accepted.chatter", {"alias": "{emergency} {0.__class__}"}), "nb")
    assert out.startswith("Hei fra {emergency} {0.__class__}. ")
    assert "113" in out


def test_fill_is_plain() -> None:
    assert fill("{a} {b} {{a}}", {"a": "1"}) == "1 {b} {a}"


def test_bad_override_values_are_ignored_not_fatal() -> None:
    texts = Texts({"nb": {"held": 42}, "en": "nonsense"})  # type: ignore[dict-item]
    assert texts.render(Text("held"), "nb") == CATALOGUE["nb"]["held"]
    assert texts.render(Text("held"), "en") == CATALOGUE["en"]["held"]


# -- the real core, end to end -------------------------------------------------------------

_T0 = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
TEEN = UserID("@teen123:example.org")
IRENE = UserID("@irene:example.org")
OLA = UserID("@ola:example.org")
OTHER = UserID("@other:example.org")
STAFF = RoomID("!staff:example.org")


def _conversation(default_language: str) -> list[Say]:
    """A whole conversation through the real core; every Say it emitted."""
    policy = Policy(
        volunteers=(
            VolunteerProfile(IRENE, "Irene", ("nb", "en"), 1),
            VolunteerProfile(OLA, "Ola", ("nb", "en"), 1),
        ),
        staff_room=STAFF,
        topics=("angst", "skole"),
        canned=("confidentiality", "emergency", "welcome"),
        ask_rating=True,
        default_language=default_language,
    )
    core = Helpline(policy, random.Random(7))
    says: list[Say] = []
    now = _T0
    n = 0

    def run(event: Any) -> None:
        nonlocal n
        for fx in core.handle(event, now):
            if isinstance(fx, Say):
                says.append(fx)
            elif isinstance(fx, CreateRoom):
                n += 1
                room = RoomID(f"!room{n}:example.org")
                run(RoomCreated(fx.ref.session_id, fx.ref.offer_id, room))
                run(Joined(room, fx.invite))
        core.take_changes()

    def say(room: RoomID, who: UserID, body: str, origin: Origin = Origin.OTHER, **kw: Any) -> None:
        nonlocal n
        n += 1
        run(Message(room, who, EventID(f"$e{n}"), body, origin=origin, **kw))

    def fire(kind: TimerKind) -> None:
        for key, timer in list(core.timers.items()):
            if timer.kind is kind:
                run(TimerFired(key))

    say(STAFF, IRENE, "!hjelp", Origin.STAFF)
    say(STAFF, IRENE, "!status", Origin.STAFF)
    say(RoomID("!dm:example.org"), TEEN, "hei", Origin.DIRECT)  # nobody on duty yet
    say(STAFF, IRENE, "!på", Origin.STAFF)  # offered and accepted at once
    session = next(iter(core.sessions.values()))
    chatter_room, volunteer_room = session.chatter_room, session.volunteer_room
    assert chatter_room
    assert volunteer_room
    for body in ("!hjelp", "!språk fr", "!slett nå"):
        say(chatter_room, TEEN, body)
    say(chatter_room, TEEN, "", kind=Kind.MEDIA, media_url="mxc://example.org/x")
    say(chatter_room, TEEN, "x" * 5000)
    for body in (
        "!hjelp",
        "!tid",
        "!forleng",
        "!status",
        "!svar confidentiality",
        "!svar emergency",
        "!svar welcome",
        "!svar nope",
        "!tema tull",
        "!hjelp-veileder",
        "!xyz",
    ):
        say(volunteer_room, IRENE, body)
    fire(TimerKind.IDLE_WARN)
    fire(TimerKind.WARN)
    say(volunteer_room, IRENE, "!tilbake")  # handed back: the chatter is requeued
    say(STAFF, OLA, "!på", Origin.STAFF)  # never straight back to Irene: Ola takes it
    say(RoomID("!dm:example.org"), TEEN, "hallo?", Origin.DIRECT)
    session = next(iter(core.sessions.values()))
    new_room = session.volunteer_room
    assert new_room
    say(RoomID("!dm2:example.org"), OTHER, "hei", Origin.DIRECT)  # Irene is free again
    say(chatter_room, TEEN, "!slutt")
    say(chatter_room, TEEN, "4")
    say(new_room, OLA, "!tema angst skole")
    fire(TimerKind.PURGE)
    other = next(s for s in core.sessions.values() if s.chatter == OTHER)
    assert other.volunteer_room
    say(other.volunteer_room, IRENE, "!slutt")
    say(STAFF, IRENE, "!av", Origin.STAFF)
    say(STAFF, OLA, "!av", Origin.STAFF)
    say(RoomID("!dm3:example.org"), UserID("@third:example.org"), "hei", Origin.DIRECT)
    fire(TimerKind.WAIT_REMINDER)
    fire(TimerKind.QUEUE_MAX_WAIT)
    return says


@pytest.mark.parametrize("default_language", ["nb", "en"])
def test_everything_the_core_says_in_a_conversation_renders(default_language: str) -> None:
    says = _conversation(default_language)
    texts = Texts(default_language=default_language)
    keys = {s.text.key for s in says}
    expected = {
        "welcome",
        "welcome.nobody_on_duty",
        "accepted.volunteer",
        "accepted.chatter",
        "requeued",
        "handback.done",
        "rating.ask",
        "rating.thanks",
        "end.chatter.completed",
        "end.volunteer.completed",
        "end.chatter.queue_timeout",
        "staff.still_waiting",
        "tag.saved",
        "duty.off",
    }
    assert expected <= keys, expected - keys
    fallback = texts.render(Text("no.such.key"), default_language)
    for s in says:
        assert set(s.text.params) == CORE_KEYS[s.text.key], s.text.key  # as declared
        out = texts.render(s.text, s.language)
        assert out != fallback, s.text.key
        assert not BRACE.search(out), (s.text.key, out)
        for secret in ("@teen123", "@irene", "example.org", "!room", "mxc://"):
            assert secret not in out, (s.text.key, out)


def test_status_texts_carry_counts_only() -> None:
    texts = Texts()
    out = texts.render(Text("status", {k: SAMPLE[k] for k in PARAMS["status"]}), "nb")
    assert "2 i kø" in out
    assert "12 min" in out


# -- when the line opens next ----------------------------------------------------------


def _opens(days: int, weekday: int = 0, day: int = 2, month: int = 3) -> dict[str, int]:
    return {"days": days, "weekday": weekday, "day": day, "month": month, "hour": 14, "minute": 0}


@pytest.mark.parametrize(
    ("opens", "nb", "en"),
    [
        (_opens(0), "Vi åpner igjen i dag kl. 14.00", "We open again today at 14:00"),
        (_opens(1), "Vi åpner igjen i morgen kl. 14.00", "We open again tomorrow at 14:00"),
        (
            _opens(3, weekday=4),
            "Vi åpner igjen fredag kl. 14.00",
            "We open again on Friday at 14:00",
        ),
        (
            _opens(9, weekday=0, day=5, month=1),
            "Vi åpner igjen mandag 5. januar kl. 14.00",
            "We open again on Monday 5 January at 14:00",
        ),
        (None, "Du er velkommen tilbake når vi har åpent igjen", "You are welcome back when"),
        ({"days": "soon"}, "når vi har åpent igjen", "when we are open again"),
    ],
)
def test_a_closed_line_says_when_it_opens_in_the_chatters_language(
    opens: Any, nb: str, en: str
) -> None:
    texts = Texts()
    for lang, expected in (("nb", nb), ("en", en)):
        out = texts.render(Text("reject.closed_hours", {"opens": opens}), lang)
        assert expected in out, out
        assert "113" in out  # a closed door still says where to turn
        assert not BRACE.search(out)


def test_the_weekdays_months_and_clock_can_be_the_organisations_own() -> None:
    texts = Texts(
        {"nb": {"word.clock": "{hour}:{minute}", "word.weekdays": "må,ti,on,to,fr,lø,sø"}}
    )
    out = texts.opening(_opens(2, weekday=2), "nb")
    assert out.startswith("Vi åpner igjen on kl. 14:00")
