"""The web chat's own words: what the page shows before there is a conversation, and why
the account endpoint refused (each refusal's `text`). Per language, the organisation's
`webchat.texts` override these; `{emergency}` is the emergency block of `bot.messages`
(with the organisation's override), so every refusal carries the numbers to call, and
`refused.closed` has `{opens}`: when the line opens next, in the bot's words.

The conversation's texts (welcome, queue, closing) are the bot's, said in the room.
"""

from __future__ import annotations

from types import MappingProxyType

REFUSALS = (
    "bad_request",
    "proof_failed",
    "rate_limited",
    "blocked",
    "full",
    "closed",
    "queue_full",
    "unavailable",
)
"""The stable `error` codes of the account endpoint; each has a `refused.<code>` text."""

PAGE = (
    "title",
    "intro",
    "start",
    "quick_exit",
    "end",
    "preparing",
    "waiting",
    "message_label",
    "send",
    "typing",
    "you",
    "ended",
    "start_over",
    "failed",
    "language",
)
"""Texts the page shows around the chat (`GET /api/config` hands them over)."""

KEYS = frozenset(PAGE) | frozenset(f"refused.{code}" for code in REFUSALS)

_NB = {
    "title": "Snakk med oss",
    "intro": (
        "Du er anonym. Ingen ser hvem du er, og samtalen slettes når den er over. "
        "Ingenting lagres i nettleseren din."
    ),
    "start": "Start chat",
    "quick_exit": "Rask utgang",
    "end": "Avslutt chat",
    "preparing": "Gjør klar en trygg chat …",
    "waiting": "Kobler deg til …",
    "message_label": "Din melding",
    "send": "Send",
    "typing": "skriver …",
    "you": "Du",
    "ended": "Chatten er avsluttet. Takk for at du tok kontakt.",
    "start_over": "Start en ny chat",
    "failed": "Vi mistet forbindelsen. Last inn siden på nytt.\n\n{emergency}",
    "language": "Språk",
    "refused.bad_request": "Noe gikk galt. Last inn siden på nytt.\n\n{emergency}",
    "refused.proof_failed": "Noe gikk galt. Last inn siden på nytt.\n\n{emergency}",
    "refused.rate_limited": (
        "Det er startet mange chatter herfra på kort tid. Vent litt og prøv igjen.\n\n{emergency}"
    ),
    "refused.full": (
        "Akkurat nå er det veldig mange som vil snakke med oss. Prøv igjen om litt.\n\n{emergency}"
    ),
    "refused.closed": "Chatten er stengt akkurat nå. {opens}\n\n{emergency}",
    "refused.queue_full": (
        "Akkurat nå venter veldig mange, så vi kan ikke ta imot flere i køen. Det betyr ikke at "
        "det du har på hjertet er mindre viktig. Prøv igjen om en stund.\n\n{emergency}"
    ),
    "refused.blocked": (
        "Du kan ikke starte en ny chat her nå. Trenger du hjelp, kan du ringe:\n\n{emergency}"
    ),
    "refused.unavailable": ("Chatten virker ikke akkurat nå. Prøv igjen om litt.\n\n{emergency}"),
}

_EN = {
    "title": "Talk to us",
    "intro": (
        "You are anonymous. Nobody sees who you are, and the conversation is deleted when it "
        "is over. Nothing is kept in your browser."
    ),
    "start": "Start chat",
    "quick_exit": "Quick exit",
    "end": "End chat",
    "preparing": "Getting a safe chat ready …",
    "waiting": "Connecting you …",
    "message_label": "Your message",
    "send": "Send",
    "typing": "is writing …",
    "you": "You",
    "ended": "The chat has ended. Thank you for reaching out.",
    "start_over": "Start a new chat",
    "failed": "We lost the connection. Please reload the page.\n\n{emergency}",
    "language": "Language",
    "refused.bad_request": "Something went wrong. Please reload the page.\n\n{emergency}",
    "refused.proof_failed": "Something went wrong. Please reload the page.\n\n{emergency}",
    "refused.rate_limited": (
        "Many chats were started from here in a short time. Wait a little and try again."
        "\n\n{emergency}"
    ),
    "refused.full": (
        "Very many people want to talk to us right now. Please try again in a little while."
        "\n\n{emergency}"
    ),
    "refused.closed": "The chat is closed right now. {opens}\n\n{emergency}",
    "refused.queue_full": (
        "Right now a lot of people are waiting, so we can't take anyone else into the queue. "
        "That doesn't mean what's on your mind matters less. Please try again in a while."
        "\n\n{emergency}"
    ),
    "refused.blocked": (
        "You cannot start a new chat here now. If you need help, you can call:\n\n{emergency}"
    ),
    "refused.unavailable": (
        "The chat is not working right now. Please try again soon.\n\n{emergency}"
    ),
}

DEFAULTS = MappingProxyType({"nb": MappingProxyType(_NB), "en": MappingProxyType(_EN)})
