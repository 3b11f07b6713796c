"""The report's words, in Norwegian (bokmål) and English: chart titles, axes, the summary.

The CSV files keep fixed English column names and the stored codes (outcomes, purge
results), so that a spreadsheet made for one report reads the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.report.figures import Fate


@dataclass(frozen=True, slots=True)
class Words:
    weekdays: tuple[str, ...]
    fates: dict[Fate, str]
    outcomes: dict[str, str]
    purges: dict[str, str]
    failed: str
    hidden_legend: str
    day: str
    week: str
    hour: str
    contacts: str
    conversations: str
    minutes: str
    median: str
    p90: str
    told: str
    rating: str
    title_contacts: str
    title_answered: str
    title_heat: str
    title_wait: str
    title_length: str
    title_topics: str
    title_outcomes: str
    title_ratings: str
    title_purges: str
    title_estimate: str
    # The summary; {placeholders} are filled by bot.report.summary.
    heading: str
    all_days: str
    nothing: str
    contacts_line: str
    answered_line: str
    answered_share: str
    fates_line: str
    wait_line: str
    length_line: str
    wait_few: str
    length_few: str
    topics_line: str
    estimate_line: str
    estimate_none: str
    ratings_line: str
    purges_line: str
    blocks_line: str
    rule_line: str
    files_line: str


NB = Words(
    weekdays=("man", "tir", "ons", "tor", "fre", "lør", "søn"),
    fates={
        Fate.ANSWERED: "besvart",
        Fate.LEFT: "gikk før svar",
        Fate.CLOSED: "avvist: stengt",
        Fate.FULL: "avvist: full kø",
        Fate.OTHER: "annet",
    },
    outcomes={
        "completed": "avsluttet",
        "chatter_left": "chatteren gikk",
        "timed_out": "tiden ute",
        "chatter_idle": "chatteren ble stille",
        "deleted": "slettet av chatteren",
        "left_waiting": "gikk fra køen",
        "queue_timeout": "ventet for lenge",
        "queue_full": "full kø",
        "closed_hours": "stengt",
        "no_consent": "uten samtykke",
        "room_failed": "rom ikke laget",
        "room_lost": "rom mistet",
    },
    purges={
        "verified": "bekreftet",
        "verified_without_admin": "bekreftet uten admin",
        "nothing_to_purge": "ingenting å slette",
    },
    failed="feilet",
    hidden_legend="1–4 (vises som <5)",
    day="dag",
    week="uke",
    hour="time",
    contacts="henvendelser",
    conversations="samtaler",
    minutes="minutter",
    median="median",
    p90="90 % innen",
    told="lovet ventetid",
    rating="vurdering",
    title_contacts="Henvendelser per dag",
    title_answered="Besvart, gikk før svar og avvist, per dag",
    title_heat="Når skriver folk? Henvendelser per ukedag og time",
    title_wait="Ventetid til svar per uke",
    title_length="Samtalelengde per uke",
    title_topics="Tema",
    title_outcomes="Hvordan samtalene endte",
    title_ratings="Vurderinger",
    title_purges="Sletting",
    title_estimate="Lovet ventetid mot faktisk ventetid",
    heading="Rapport for {first} til {last}",
    all_days="Rapport for alle dager",
    nothing="Ingen henvendelser i perioden.",
    contacts_line="Henvendelser: {contacts}.",
    answered_line="Vi besvarte {answered} av {contacts}",
    answered_share=" ({percent} %)",
    fates_line="Gikk før svar: {left}. Avvist: stengt {closed}, full kø {full}. Annet: {other}.",
    wait_line="Ventetid til svar: median {median} min, 90 % innen {p90} min ({count} besvart).",
    length_line="Samtalelengde: median {median} min, 90 % innen {p90} min.",
    wait_few="Ventetid til svar: for få besvart til å vise median og 90 %.",
    length_few="Samtalelengde: for få samtaler til å vise median og 90 %.",
    topics_line="Vanligste tema: {topics}.",
    estimate_line="Lovet ventetid holdt: {within} av {answered} besvart innen det de ble lovet.",
    estimate_none="Lovet ventetid: ingen besvarte med en lovet ventetid i perioden.",
    ratings_line="Vurderinger: {ratings}.",
    purges_line="Sletting: {purges}.",
    blocks_line="Blokkerte: {blocks}.",
    rule_line="Tall fra 1 til 4 vises som «<5».",
    files_line="Skrevet til {out}: {files}.",
)

EN = Words(
    weekdays=("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    fates={
        Fate.ANSWERED: "answered",
        Fate.LEFT: "left before an answer",
        Fate.CLOSED: "turned away: closed",
        Fate.FULL: "turned away: queue full",
        Fate.OTHER: "other",
    },
    outcomes={
        "completed": "completed",
        "chatter_left": "chatter left",
        "timed_out": "time ran out",
        "chatter_idle": "chatter idle",
        "deleted": "deleted by the chatter",
        "left_waiting": "left the queue",
        "queue_timeout": "waited too long",
        "queue_full": "queue full",
        "closed_hours": "closed",
        "no_consent": "no consent",
        "room_failed": "room not made",
        "room_lost": "room lost",
    },
    purges={
        "verified": "verified",
        "verified_without_admin": "verified without admin",
        "nothing_to_purge": "nothing to delete",
    },
    failed="failed",
    hidden_legend="1–4 (shown as <5)",
    day="day",
    week="week",
    hour="hour",
    contacts="contacts",
    conversations="conversations",
    minutes="minutes",
    median="median",
    p90="90% within",
    told="wait told",
    rating="rating",
    title_contacts="Contacts per day",
    title_answered="Answered, left before an answer and turned away, per day",
    title_heat="When do people write? Contacts per weekday and hour",
    title_wait="Wait for an answer per week",
    title_length="Conversation length per week",
    title_topics="Topics",
    title_outcomes="How conversations ended",
    title_ratings="Ratings",
    title_purges="Deletion",
    title_estimate="Wait told vs. actual wait",
    heading="Report for {first} to {last}",
    all_days="Report for all days",
    nothing="No contacts in this period.",
    contacts_line="Contacts: {contacts}.",
    answered_line="We answered {answered} of {contacts}",
    answered_share=" ({percent}%)",
    fates_line=(
        "Left before an answer: {left}. Turned away: closed {closed}, queue full {full}. "
        "Other: {other}."
    ),
    wait_line="Wait for an answer: median {median} min, 90% within {p90} min ({count} answered).",
    length_line="Conversation length: median {median} min, 90% within {p90} min.",
    wait_few="Wait for an answer: too few answered to show a median and 90%.",
    length_few="Conversation length: too few conversations to show a median and 90%.",
    topics_line="Most frequent topics: {topics}.",
    estimate_line="Wait estimate kept: {within} of {answered} answered within the wait told.",
    estimate_none="Wait estimate: nobody told an estimate was answered in this period.",
    ratings_line="Ratings: {ratings}.",
    purges_line="Deletion: {purges}.",
    blocks_line="Blocked: {blocks}.",
    rule_line='Counts from 1 to 4 are shown as "<5".',
    files_line="Written to {out}: {files}.",
)

WORDS = {"nb": NB, "en": EN}


def outcome_label(words: Words, code: str) -> str:
    return words.outcomes.get(code, code)


def purge_label(words: Words, code: str) -> str:
    if code.startswith("failed"):
        reason = code.partition(":")[2]
        return f"{words.failed}: {reason}" if reason else words.failed
    return words.purges.get(code, code)
