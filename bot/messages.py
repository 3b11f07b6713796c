"""Every sentence the bot says, in Norwegian bokmål (nb) and English (en), and how it is
filled in.

The core never builds a sentence: it emits `Say(to, Text(key, params), language)`, and
`Texts.render` turns that into the words someone reads. Two audiences:

- chatters, often teenagers, often having a hard time: short sentences, warm, plain words,
  no jargon and never blame. Every text that closes a door (closed, queue full, ended)
  also says where else to turn (`{emergency}`, and where it fits `{alternatives}`);
- volunteers and supervisors: brisk and practical, the session number and the commands.

Templates use plain `{name}` placeholders and `{{` / `}}` for a literal brace. They are
filled in by a small formatter of our own, not `str.format`: a template comes from the
organisation's config and must never reach attributes or items (`{x.__class__}`,
`{0[key]}` stay literally as written), and a placeholder without a value is left visible
instead of raising. Values a participant wrote are never re-read as templates.

Placeholders every template may use: `{emergency}`, `{alternatives}` (themselves texts of
this catalogue) and `{bot_name}`. The others are the params the core passes for that key,
listed in `PARAMS`. None of them identifies a person: chatters are "Chatter #<number>",
volunteers their configured alias; no Matrix ID ever reaches a text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from bot.core.events import Text

DEFAULT_LANGUAGE = "nb"

COMMON: tuple[str, ...] = ("emergency", "alternatives", "bot_name")
"""Placeholders available in every template."""

_END = ("number", "topics", "by")
_OUTCOMES = (
    "completed",
    "chatter_left",
    "timed_out",
    "chatter_idle",
    "deleted",
    "left_waiting",
    "queue_timeout",
    "queue_full",
    "closed_hours",
    "no_consent",
    "room_failed",
    "room_lost",
)

# The admins' commands and the care for volunteers (bot.core.admin, bot.core.care): kept
# together, spread into PARAMS, NB and EN below.
_STAFF_PARAMS: dict[str, tuple[str, ...]] = {
    "help.reload": (),
    "help.status_full": (),
    "admins_only": (),
    "reload.done": ("added", "removed"),
    "reload.restart": ("keys",),
    "reload.refused": ("problems",),
    "help.my_shift": (),
    "shift.on": ("since", "minutes", "conversations", "open"),
    "shift.off": ("conversations",),
    "debrief.volunteer": (),
    "staff.debrief": ("alias",),
    "status.full": (
        "waiting",
        "longest_wait_minutes",
        "offers",
        "on_duty_aliases",
        "off_duty_aliases",
    ),
}

PARAMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        **_STAFF_PARAMS,
        # shared blocks and fallbacks
        "emergency": (),
        "alternatives": (),
        "fallback": (),
        "persona.waiting": (),
        "word.yes": (),
        "word.no": (),
        "word.by.chatter": (),
        "word.by.volunteer": (),
        "word.by.none": (),
        # when the line opens next (`Texts.opening`), inside reject.closed_hours's {opens}
        "opens.today": ("time",),
        "opens.tomorrow": ("time",),
        "opens.weekday": ("day", "time"),
        "opens.date": ("day", "date", "month", "time"),
        "opens.unknown": (),
        "word.clock": ("hour", "minute"),
        "word.weekdays": (),
        "word.months": (),
        # intake and rejection
        "intake.already_open": (),
        "intake.already_invited": (),
        "intake.daily_cap": (),
        "intake.invited": (),
        "intake.invited_plaintext": (),
        "intake.plaintext_refused": (),
        "intake.other_server": ("server",),
        "intake.other_server_web": ("server", "url"),
        "intake.room_failed": (),
        "reject.closed_hours": ("opens",),
        "reject.queue_full": (),
        "blocked.direct": (),
        "blocked.lobby": (),
        # the chatter's side
        "consent": (),
        "welcome": ("position", "minutes"),
        "welcome.nobody_on_duty": ("position",),
        "queue.update": ("position", "minutes"),
        "queue.update.no_estimate": ("position",),
        "held": (),
        "held_full": (),
        "accepted.chatter": ("alias",),
        "requeued": (),
        "extend.chatter": ("minutes",),
        "warn.chatter": ("minutes",),
        "idle.warning": ("minutes",),
        "rating.ask": (),
        "rating.thanks": (),
        "language.unknown": ("available",),
        "language.set": (),
        # both sides
        "usage": ("usage",),
        "help": ("lines",),
        "media_refused": (),
        "media.too_big": ("limit",),
        "media.type": ("types",),
        "media.broken": (),
        "media.not_yet": (),
        "too_long": ("length", "limit"),
        "rate_limited": (),
        # command help, one per command in bot.core.commands.TABLE
        "help.end": (),
        "help.delete": (),
        "help.language": (),
        "help.yes": (),
        "help.help": (),
        "help.on": (),
        "help.off": (),
        "help.status": (),
        "help.extend": (),
        "help.time": (),
        "help.say": (),
        "help.tag": (),
        "help.handback": (),
        "help.alert": (),
        "help.block": (),
        "help.unblock": (),
        "help.transfer": (),
        "help.note": (),
        "help.join": (),
        "help.leave": (),
        # canned replies a volunteer sends with !svar / !say
        "canned.unknown": ("names",),
        "canned.confidentiality": (),
        "canned.emergency": (),
        "canned.welcome": (),
        # the volunteer's side
        "accepted.volunteer": ("number", "language", "waited", "minutes", "requeued"),
        "accepted.volunteer.requeued": (),
        "unknown_command": (),
        "not_delivered_ended": (),
        "not_active": (),
        "status": ("waiting", "longest_wait_minutes", "on_duty", "active", "offers", "ending"),
        "tag.unknown": ("unknown", "topics"),
        "tag.saved": ("tags",),
        "time": ("elapsed", "left", "extension_left"),
        "alert.sent": (),
        "extend.none_left": (),
        "extend.done": ("minutes", "left"),
        "handback.done": ("number",),
        "warn.volunteer": ("minutes", "extension_left"),
        "idle.volunteer": ("minutes",),
        # encryption: a message whose key never came, a staff member's new identity
        "unreadable.chatter": (),
        "unreadable.volunteer": ("number",),
        "unverified.device": ("number",),
        "unreadable.own": (),
        "untrusted.own": (),
        "staff.identity_changed": ("name",),
        # the volunteers' room and DMs with staff
        "staff.dm_hint": (),
        "staff.alert": ("number", "alias", "minutes"),
        "staff.waiting": ("number", "language"),
        "staff.still_waiting": ("number", "language", "minutes"),
        "staff.requeued": ("number", "language"),
        "staff.lapsed_off_duty": ("alias", "lapses"),
        "staff.purge_failed": ("number",),
        "staff.purge_retrying": ("number",),
        "duty.not_volunteer": (),
        "duty.on": ("alias", "waiting"),
        "duty.off": ("alias", "active"),
        "duty.off_ask": ("number",),
        # blocking, by supervisors
        "supervisors_only": (),
        "block.done": ("number", "until"),
        "block.done_permanent": ("number",),
        "block.unknown": ("number",),
        "block.volunteer": ("number",),
        "unblock.done": ("number",),
        "unblock.unknown": ("number",),
        # transfer and the handover note
        "transfer.asked": ("alias", "number"),
        "transfer.chatter": (),
        "transfer.done": ("alias", "number"),
        "transfer.incoming": ("alias", "number"),
        "transfer.lost": ("alias", "number"),
        "transfer.nobody": ("number",),
        "transfer.pending": ("alias",),
        "transfer.unavailable": ("alias",),
        "note.handover": ("note",),
        "note.saved": (),
        # supervisors at the volunteer's side, and a silent volunteer
        "duty.supervisor_on": (),
        "duty.supervisor_off": (),
        "join.already": ("number",),
        "join.invited": ("number",),
        "join.own": ("number",),
        "join.unknown": ("number",),
        "supervision.chatter": (),
        "supervision.joined": ("name",),
        "supervision.left": ("name",),
        "silence.nudge": ("minutes",),
        "staff.silence": ("number", "alias", "minutes"),
        # closing texts, one per bot.core.model.Outcome
        **{f"end.chatter.{o}": () for o in _OUTCOMES},
        **{f"end.volunteer.{o}": _END for o in _OUTCOMES},
    }
)
"""Every key, with the params the core passes for it (besides `COMMON`)."""

# --------------------------------------------------------------------------------------
# Norwegian bokmål

_NB_BACK = "Vil du snakke igjen, start en ny chat med {bot_name}. Du er alltid velkommen."
_NB_COMMANDS = (
    "• Skriv !slutt for å avslutte.\n"
    "• Skriv !slett for å avslutte og slette alt med en gang.\n"
    "• For English, write !language en."
)
_NB_TAG = (
    "\nMerk samtalen med !tema og ett eller flere tema. Valg: {topics}."
    " Det lagres bare som anonyme tall."
    "\nRommet slettes om kort tid. Ta en pause om du trenger det."
)

_NB_STAFF: dict[str, str] = {
    "help.my_shift": "din egen vakt: hvor lenge og hvor mange samtaler (bare tall)",
    "shift.on": (
        "Din vakt: på siden {since} ({minutes} min). {conversations} samtaler denne vakta, "
        "{open} pågår nå. Husk pauser, og si fra til en veileder om noe sitter i."
    ),
    "shift.off": (
        "Du er ikke på vakt nå. Forrige vakt: {conversations} samtaler. Skriv !på når du "
        "vil begynne."
    ),
    "debrief.volunteer": (
        "Den samtalen handlet om noe tungt. Ta gjerne en prat med en veileder før du tar "
        "neste, og ta en pause om du trenger det. Det er en del av jobben, ikke et tegn på "
        "at noe gikk galt."
    ),
    "staff.debrief": (
        "{alias} har avsluttet en samtale som kan trenge en debrief. Kan en veileder ta kontakt?"
    ),
    "help.reload": "(administratorer) les konfigurasjonsfila på nytt, uten omstart",
    "help.status_full": (
        "(administratorer) hvem som er på vakt (alias), kø, lengste ventetid og samtaler per "
        "frivillig"
    ),
    "admins_only": "Den kommandoen er bare for administratorer.",
    "reload.done": (
        "Konfigurasjonen er lest inn på nytt og gjelder fra nå. Frivillige: {added} nye, "
        "{removed} fjernet (samtaler som pågår, fortsetter til de er ferdige)."
    ),
    "reload.restart": ("Disse endringene krever omstart og gjelder ikke ennå: {keys}."),
    "reload.refused": (
        "Konfigurasjonsfila har {problems} feil og ble ikke lest inn; den gamle gjelder "
        "fortsatt. Kjør helpline-bot check-config på fila for å se dem (de står også i loggen)."
    ),
    "status.full": (
        "Full status: {waiting} i kø (lengste ventetid {longest_wait_minutes} min), "
        "{offers} tilbud ubesvart.\n"
        "På vakt (samtaler): {on_duty_aliases}\n"
        "Ikke på vakt, men i samtale: {off_duty_aliases}"
    ),
}

NB: dict[str, str] = {
    **_NB_STAFF,
    "emergency": (
        "Er det akutt? Ring:\n"
        "• 113 – Medisinsk nødtelefon, når liv eller helse er i fare\n"
        "• 112 – Politiet\n"
        "• 116 111 – Alarmtelefonen for barn og unge (gratis, døgnåpen)"
    ),
    "alternatives": (
        "Andre du kan snakke med:\n"
        "• Kirkens SOS: 22 40 00 40 (døgnåpen)\n"
        "• Mental Helse hjelpetelefon: 116 123 (døgnåpen)"
    ),
    "fallback": "Beklager, noe gikk galt hos oss. Prøv gjerne igjen om litt.",
    "persona.waiting": "{bot_name}",
    "word.yes": "ja",
    "word.no": "nei",
    "word.by.chatter": "chatteren",
    "word.by.volunteer": "deg",
    "word.by.none": "systemet",
    "opens.today": "Vi åpner igjen i dag kl. {time}, og da er du velkommen tilbake.",
    "opens.tomorrow": "Vi åpner igjen i morgen kl. {time}, og da er du velkommen tilbake.",
    "opens.weekday": "Vi åpner igjen {day} kl. {time}, og da er du velkommen tilbake.",
    "opens.date": (
        "Vi åpner igjen {day} {date}. {month} kl. {time}, og da er du velkommen tilbake."
    ),
    "opens.unknown": "Du er velkommen tilbake når vi har åpent igjen.",
    "word.clock": "{hour}.{minute}",
    "word.weekdays": "mandag, tirsdag, onsdag, torsdag, fredag, lørdag, søndag",
    "word.months": (
        "januar, februar, mars, april, mai, juni, juli, august, september, oktober, "
        "november, desember"
    ),
    # intake and rejection
    "intake.already_open": (
        "Du har allerede en samtale med oss, og den er her. Bare skriv videre i dette rommet."
    ),
    "intake.already_invited": (
        "Du har allerede fått en invitasjon til et privat rom fra {bot_name}. "
        "Godta invitasjonen, så er du i gang."
    ),
    "intake.daily_cap": (
        "Du har allerede hatt flere samtaler med oss i dag, og vi har en grense for hvor mange "
        "det kan bli per dag. Det er ikke noe galt i å ta kontakt. Du er velkommen igjen i morgen."
        "\n\n{alternatives}\n\n{emergency}"
    ),
    "intake.invited": (
        "Hei! Så ingen andre kan lese med, har jeg invitert deg til et privat rom. "
        "Godta invitasjonen for å begynne."
    ),
    "intake.invited_plaintext": (
        "Hei! Denne chatten er ikke kryptert, så det du skriver her er ikke helt privat. "
        "Ikke skriv mer her. Jeg har invitert deg til et privat, kryptert rom: "
        "godta invitasjonen, så fortsetter vi der."
    ),
    "intake.plaintext_refused": (
        "Hei, og takk for at du skriver. Denne chatten er ikke kryptert, så vi kan ikke "
        "snakke med deg her. Start en ny chat med {bot_name} med kryptering slått på "
        "(eller slå på kryptering i denne chatten), så er vi her for deg.\n\n{emergency}"
    ),
    "intake.other_server": (
        "Hei, og takk for at du skriver. {bot_name} tar bare imot samtaler fra kontoer på "
        "{server}, så vi kan ikke snakke med deg herfra.\n\n{alternatives}\n\n{emergency}"
    ),
    "intake.other_server_web": (
        "Hei, og takk for at du skriver. {bot_name} tar bare imot samtaler fra kontoer på "
        "{server}, så vi kan ikke snakke med deg herfra. Du kan skrive til oss uten konto "
        "her: {url}\n\n{alternatives}\n\n{emergency}"
    ),
    "intake.room_failed": (
        "Beklager, vi fikk ikke laget et privat rom til deg. "
        "Prøv å skrive til oss igjen om litt.\n\n{emergency}"
    ),
    "reject.closed_hours": (
        "Hei, og takk for at du skriver. Chatten er stengt akkurat nå, så ingen frivillige "
        "kan svare deg her. {opens}\n\n{alternatives}\n\n{emergency}"
    ),
    "reject.queue_full": (
        "Hei, og takk for at du skriver. Akkurat nå venter veldig mange, så vi kan ikke ta imot "
        "flere i køen. Det betyr ikke at det du har på hjertet er mindre viktig. "
        "Prøv gjerne igjen om en stund.\n\n{alternatives}\n\n{emergency}"
    ),
    "blocked.direct": (
        "Hei. Vi kan ikke ta imot en chat fra deg her akkurat nå. Trenger du noen å snakke "
        "med, er disse der for deg.\n\n{alternatives}\n\n{emergency}"
    ),
    "blocked.lobby": "Trenger du noen å snakke med nå?\n\n{alternatives}\n\n{emergency}",
    # the chatter's side
    "consent": (
        "Før vi starter:\n"
        "• Du er anonym. Den frivillige ser ikke navnet ditt eller hvem du er.\n"
        "• De frivillige har taushetsplikt.\n"
        "• Samtalen blir slettet når dere er ferdige. Vi tar bare vare på anonyme tall, "
        "som hvor lenge samtalen varte.\n\n"
        "Skriv !ja hvis det er greit for deg, så får du plass i køen.\n\n{emergency}"
    ),
    "welcome": (
        "Hei, og velkommen til {bot_name}! Så fint at du tok kontakt.\n\n"
        "Du er nummer {position} i køen. Det tar omtrent {minutes} minutter før en frivillig "
        "kan snakke med deg. Du kan begynne å skrive mens du venter.\n\n"
        "Du er anonym, og samtalen blir slettet når dere er ferdige.\n"
        f"{_NB_COMMANDS}\n\n{{emergency}}"
    ),
    "welcome.nobody_on_duty": (
        "Hei, og velkommen til {bot_name}! Så fint at du tok kontakt.\n\n"
        "Akkurat nå er ingen frivillige på vakt. Du kan vente her. Det kan komme noen, "
        "og da får du beskjed. Du er nummer {position} i køen.\n\n"
        "Du er anonym, og samtalen blir slettet når dere er ferdige.\n"
        f"{_NB_COMMANDS}\n\n{{alternatives}}\n\n{{emergency}}"
    ),
    "queue.update": ("Nå er du nummer {position} i køen. Det tar omtrent {minutes} minutter til."),
    "queue.update.no_estimate": (
        "Nå er du nummer {position} i køen. Ingen frivillige er på vakt akkurat nå, "
        "men du kan vente her."
    ),
    "held": (
        "Takk. Jeg tar vare på det du skriver, og den frivillige får se det "
        "så snart samtalen starter."
    ),
    "held_full": (
        "Du har skrevet mye mens du venter, og det er helt greit. Den frivillige får se det "
        "du har skrevet så langt. Nye meldinger blir ikke tatt vare på før samtalen starter."
    ),
    "accepted.chatter": (
        "Nå er {alias} her, en av våre frivillige. Skriv det du har på hjertet. "
        "{alias} er her for å lytte."
    ),
    "requeued": (
        "Den frivillige måtte dessverre gå fra samtalen. Det er ikke din feil. "
        "Du er først i køen, og en annen frivillig kommer så snart noen er ledig."
    ),
    "extend.chatter": "Samtalen er forlenget med {minutes} minutter.",
    "warn.chatter": "Vi har omtrent {minutes} minutter igjen av samtalen.",
    "idle.warning": (
        "Er du der fortsatt? Det er helt greit å bruke tid. Hvis vi ikke hører noe fra deg, "
        "avsluttes samtalen om {minutes} minutter."
    ),
    "rating.ask": (
        "Hvis du vil: Hvordan var det å snakke med oss? Svar med et tall fra 1 (ikke bra) "
        "til 5 (veldig bra). Du trenger ikke svare."
    ),
    "rating.thanks": "Takk for at du svarte!",
    "language.unknown": "Det språket har vi ikke. Du kan velge: {available}.",
    "language.set": "Nå skriver jeg på norsk.",
    # both sides
    "usage": "Slik skriver du den kommandoen: {usage}",
    "help": "Dette kan du skrive:\n{lines}",
    "media_refused": (
        "Bilder, filer og lydmeldinger blir ikke sendt videre her, bare tekst. "
        "Det er for å passe på personvernet. Skriv det gjerne med ord i stedet."
    ),
    "media.too_big": (
        "Filen er for stor til å sendes videre (grensen er {limit} MB). Ingenting ble sendt."
    ),
    "media.type": (
        "Dette kan ikke sendes videre her. Bare tekst og disse filtypene går videre: "
        "{types}. Ingenting ble sendt."
    ),
    "media.broken": (
        "Filen kunne ikke leses, så den ble ikke sendt videre. Prøv gjerne å sende den igjen."
    ),
    "media.not_yet": (
        "Bilder og filer kan sendes når en frivillig er kommet inn i samtalen. "
        "Ingenting ble sendt ennå."
    ),
    "too_long": (
        "Meldingen ble for lang til å sendes ({length} tegn, grensen er {limit}). "
        "Del den gjerne opp i flere kortere meldinger."
    ),
    "rate_limited": (
        "Den siste meldingen kom ikke fram, fordi det kom mange meldinger på kort tid. "
        "Vent litt og send den igjen."
    ),
    # command help
    "help.end": "avslutt samtalen",
    "help.delete": "avslutt og slett samtalen med en gang",
    "help.language": "bytt språk (nb = norsk, en = English)",
    "help.yes": "godta vilkårene og få plass i køen",
    "help.help": "vis denne lista",
    "help.on": "gå på vakt",
    "help.off": "gå av vakt (pågående samtaler fortsetter)",
    "help.status": "kø, ventetid og hvor mange som er på vakt (bare tall)",
    "help.extend": "forleng samtalen, f.eks. med 10m",
    "help.time": "hvor lenge samtalen har vart, og hvor mye tid som er igjen",
    "help.say": "send et ferdig svar til chatteren",
    "help.tag": "merk samtalen med tema (lagres bare som anonyme tall)",
    "help.handback": "gi fra deg samtalen; chatteren blir satt først i køen",
    "help.alert": "be en veileder om hjelp",
    "help.block": (
        "(veiledere) blokker chatteren fra samtale N: 24 timer om ikke annet er sagt, "
        "ellers f.eks. 12t, 7d, 2u eller permanent"
    ),
    "help.unblock": "(veiledere) opphev blokkeringen som ble satt på samtale N",
    "help.transfer": (
        "gi samtalen videre til en navngitt frivillig, eller til neste ledige; "
        "du beholder den til noen har tatt den"
    ),
    "help.note": "skriv et notat som bare neste frivillige ser (aldri chatteren)",
    "help.join": "(veiledere) bli med i den frivilliges rom for samtale N",
    "help.leave": "(veiledere) gå ut av den frivilliges rom",
    # canned replies, said in the volunteer's voice
    "canned.unknown": "Fant ikke det svaret. Du kan bruke: {names}.",
    "canned.confidentiality": (
        "Jeg har taushetsplikt, og du er anonym her. Jeg ser ikke navnet ditt eller hvem du er. "
        "Samtalen blir slettet når vi er ferdige. Du bestemmer selv hva du vil fortelle."
    ),
    "canned.emergency": (
        "Det du forteller høres alvorlig ut, og jeg er glad for at du sier det til meg. "
        "Hvis du er i fare nå, eller har skadet deg, ring 113 med en gang.\n\n"
        "{emergency}\n\nDu kan fortsatt skrive til meg her."
    ),
    "canned.welcome": (
        "Hei! Så fint at du tok kontakt. Jeg er her for å lytte. "
        "Skriv det du har lyst til, i ditt eget tempo."
    ),
    # the volunteer's side
    "accepted.volunteer": (
        "Chatter #{number} er her. Språk: {language}. Ventet {waited} min. "
        "Tidsgrense: {minutes} min.{requeued}\n"
        "Alt du skriver går til chatteren. Kommandoer: !tid, !forleng, !svar NAVN, !tema, "
        "!slutt, !tilbake, !hjelp-veileder (alle: !hjelp)."
    ),
    "accepted.volunteer.requeued": (
        " Chatteren har snakket med en annen frivillig før og ble satt først i køen."
    ),
    "unknown_command": (
        "Ukjent kommando. Den ble ikke sendt til chatteren. Skriv !hjelp for å se kommandoene."
    ),
    "not_delivered_ended": "Ikke sendt: samtalen er avsluttet, eller den er ikke din lenger.",
    "not_active": "Det går bare mens samtalen pågår.",
    "status": (
        "Status: {waiting} i kø (lengste ventetid {longest_wait_minutes} min). "
        "{on_duty} på vakt, {active} samtaler pågår, {offers} tilbud ubesvart, "
        "{ending} avsluttes."
    ),
    "tag.unknown": "Ukjent tema: {unknown}. Velg blant: {topics}.",
    "tag.saved": "Tema lagret (bare som anonyme tall): {tags}.",
    "time": (
        "Samtalen har vart i {elapsed} min. Det er {left} min igjen. "
        "Du kan forlenge med inntil {extension_left} min til."
    ),
    "alert.sent": (
        "Veilederne har fått beskjed (bare samtalenummeret, ikke innhold). "
        "Noen tar kontakt så snart de kan."
    ),
    "extend.none_left": "Samtalen kan ikke forlenges mer.",
    "extend.done": "Forlenget med {minutes} min. Det er {left} min igjen.",
    "handback.done": (
        "Chatter #{number} er satt først i køen igjen, og du er ute av samtalen. Takk!"
    ),
    "warn.volunteer": (
        "{minutes} min igjen. Du kan forlenge med inntil {extension_left} min (!forleng)."
    ),
    "idle.volunteer": (
        "Chatteren har ikke skrevet på en stund. Samtalen avsluttes om {minutes} min "
        "hvis det ikke kommer noe."
    ),
    "unreadable.chatter": (
        "Beklager, jeg fikk ikke lest den siste meldingen din. Det er en feil med "
        "krypteringen, ikke noe du har gjort. Kan du sende den en gang til?"
    ),
    "unreadable.volunteer": (
        "Chatter #{number} skrev noe som ikke kom fram (krypteringen feilet). "
        "Chatteren er bedt om å sende det på nytt."
    ),
    "unverified.device": (
        "Obs: Chatter #{number} skriver fra en enhet som ikke er verifisert (en eldre app "
        "eller en bro). Samtalen er kryptert, men ingen kan bekrefte at bare chatteren leser."
    ),
    "unreadable.own": (
        "Meldingen din kunne ikke leses (krypteringen feilet), så den ble ikke sendt videre. "
        "Send den på nytt."
    ),
    "untrusted.own": (
        "Meldingen din kom fra en enhet du ikke har bekreftet, så den ble ikke sendt videre "
        "og ingen kommando ble utført. Bekreft enheten fra en innlogging du allerede har "
        "bekreftet, eller skriv derfra. Var det ikke deg, si fra til en administrator."
    ),
    "staff.identity_changed": (
        "Sikkerhet: {name} har fått en ny krypteringsidentitet. Til en administrator har "
        "bekreftet at det stemmer (helpline-bot reset-identity), får {name} ingen krypterte "
        "meldinger fra boten. Har {name} ikke satt opp en ny identitet selv, kan kontoen "
        "være misbrukt."
    ),
    # the volunteers' room and DMs with staff
    "staff.dm_hint": "Her forstår jeg bare kommandoer. Skriv !hjelp for å se dem.",
    "staff.alert": (
        "Veileder trengs: {alias} ber om hjelp i samtalen med Chatter #{number} "
        "({minutes} min inn i samtalen). Godta invitasjonen til rommet for å bli med, "
        "eller skriv !bli-med {number}."
    ),
    "staff.waiting": "Ny i kø: Chatter #{number} ({language}).",
    "staff.still_waiting": (
        "Venter fortsatt: Chatter #{number} ({language}), {minutes} min. Er noen ledige? Skriv !på."
    ),
    "staff.requeued": (
        "Tilbake i kø, først i rekken: Chatter #{number} ({language}). "
        "Den frivillige gikk ut av samtalen."
    ),
    "staff.lapsed_off_duty": (
        "{alias} er satt av vakt etter {lapses} ubesvarte tilbud. Skriv !på for å komme tilbake."
    ),
    "staff.purge_failed": (
        "Til veileder: Slettingen av samtalen med Chatter #{number} kunne ikke bekreftes. "
        "Noe av den kan fortsatt ligge på serveren. Be en administrator sjekke det."
    ),
    "staff.purge_retrying": (
        "Til veileder: Slettingen av samtalen med Chatter #{number} venter på serveren, som "
        "ikke svarer som den skal. Boten prøver igjen av seg selv til den lykkes; til da "
        "ligger samtalen fortsatt på serveren. Si fra til en administrator."
    ),
    "duty.not_volunteer": (
        "Du står ikke på lista over frivillige, så du kan ikke gå på vakt. "
        "Ta kontakt med en administrator."
    ),
    "duty.on": "{alias} er på vakt. Nå venter {waiting} i kø.",
    "duty.off": (
        "{alias} er av vakt og får ikke flere tilbud. "
        "Pågående samtaler: {active} (de fortsetter til de er ferdige)."
    ),
    "duty.off_ask": (
        "Du er av vakt. Samtalen med Chatter #{number} fortsetter til du velger: "
        "!slutt for å avslutte den, eller !tilbake for å gi den tilbake til køen "
        "(chatteren kommer først)."
    ),
    # blocking, by supervisors
    "supervisors_only": "Den kommandoen er bare for veiledere.",
    "block.done": (
        "Chatter #{number} er blokkert til {until} og kan ikke starte nye samtaler. "
        "Skriver de, får de nødnumrene (høyst én gang om dagen). Angre: !opphev {number}."
    ),
    "block.done_permanent": (
        "Chatter #{number} er blokkert for godt og kan ikke starte nye samtaler. "
        "Skriver de, får de nødnumrene (høyst én gang om dagen). Angre: !opphev {number}."
    ),
    "block.unknown": (
        "Fant ingen samtale med nummer {number}. En blokkering må settes før samtalen er "
        "slettet; etterpå vet boten ikke lenger hvem det var."
    ),
    "block.volunteer": (
        "En veileder har blokkert Chatter #{number}: de kan ikke starte nye samtaler. "
        "Denne samtalen fortsetter til du avslutter den med !slutt."
    ),
    "unblock.done": "Blokkeringen av Chatter #{number} er opphevet.",
    "unblock.unknown": (
        "Ingen blokkering har nummer {number}. Den kan ha gått ut av seg selv, eller være "
        "opphevet allerede."
    ),
    # transfer and the handover note
    "transfer.asked": (
        "Chatter #{number} er tilbudt {alias}. Du beholder samtalen til {alias} har tatt den."
    ),
    "transfer.chatter": (
        "Den frivillige du snakket med, har gitt samtalen videre til en annen frivillig. "
        "Det er ikke din feil. Den nye ser ikke det dere skrev før, så fortell gjerne "
        "det du vil at de skal vite."
    ),
    "transfer.done": (
        "{alias} har tatt over samtalen med Chatter #{number}, og du er ute av den. Takk!"
    ),
    "transfer.incoming": (
        "Chatter #{number} er overført til deg fra {alias}. Du ser ikke det som ble skrevet før."
    ),
    "transfer.lost": (
        "{alias} tok ikke imot Chatter #{number}. Du beholder samtalen. "
        "Prøv !overfør igjen, eller !tilbake for å sette chatteren først i køen."
    ),
    "transfer.nobody": (
        "Ingen ledig frivillig kan ta Chatter #{number} nå. Du beholder samtalen. "
        "Prøv igjen om litt, eller !hjelp-veileder."
    ),
    "transfer.pending": "Samtalen er allerede tilbudt {alias}. Vent på svar.",
    "transfer.unavailable": (
        "{alias} kan ikke ta samtalen nå (ikke på vakt, eller ikke ledig). Du beholder den."
    ),
    "note.handover": "Notat fra forrige frivillige (chatteren ser det ikke):\n{note}",
    "note.saved": (
        "Notatet er lagret. Bare den neste frivillige som tar samtalen, ser det; "
        "chatteren ser det aldri. Det slettes med samtalen."
    ),
    # supervisors at the volunteer's side, and a silent volunteer
    "duty.supervisor_on": (
        "Du er på vakt som veileder: du får beskjed når en frivillig ber om hjelp."
    ),
    "duty.supervisor_off": "Du er av vakt som veileder.",
    "join.already": "Du er allerede med i rommet for Chatter #{number}.",
    "join.invited": (
        "Du er invitert til den frivilliges rom for Chatter #{number}. Godta invitasjonen. "
        "Det du skriver der, ser bare den frivillige."
    ),
    "join.own": "Chatter #{number} er din egen samtale.",
    "join.unknown": "Ingen pågående samtale har nummer {number}.",
    "supervision.chatter": "En veileder hjelper den frivillige i denne samtalen.",
    "supervision.joined": (
        "Veileder {name} er med i rommet. {name} ser det som sendes her fra nå av; "
        "det {name} skriver, ser bare du, aldri chatteren. !forlat tar veilederen ut."
    ),
    "supervision.left": "Veileder {name} har gått ut av rommet.",
    "silence.nudge": (
        "Chatteren har ventet på svar fra deg i {minutes} min. Er du der? "
        "Trenger du hjelp, skriv !hjelp-veileder."
    ),
    "staff.silence": (
        "Veileder trengs: Chatter #{number} har ventet {minutes} min på svar fra {alias}. "
        "Skriv !bli-med {number} for å bli med i rommet."
    ),
    # closing texts for the chatter
    "end.chatter.completed": (
        "Takk for at du snakket med oss. Samtalen er avsluttet, og den blir nå slettet.\n\n"
        f"{_NB_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.chatter_left": (
        "Du har gått ut av samtalen. Takk for at du tok kontakt. Samtalen blir nå slettet.\n\n"
        f"{_NB_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.timed_out": (
        "Tiden for samtalen er ute, så den er avsluttet nå. Takk for at du snakket med oss. "
        "Samtalen blir slettet.\n\n"
        f"{_NB_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.chatter_idle": (
        "Det har vært stille en stund, så vi har avsluttet samtalen. Det er helt greit. "
        "Takk for at du tok kontakt. Samtalen blir nå slettet.\n\n"
        f"{_NB_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.deleted": (
        "Samtalen er avsluttet og slettet. Takk for at du tok kontakt.\n\n"
        f"{_NB_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.left_waiting": (
        f"Du har gått ut av køen. Takk for at du tok kontakt.\n\n{_NB_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.queue_timeout": (
        "Takk for at du tok kontakt. Vi er lei oss for at ingen kunne snakke med deg denne "
        "gangen. Det er ikke fordi det du har på hjertet er mindre viktig. "
        "Akkurat nå er det mange som tar kontakt. "
        "Prøv gjerne igjen senere: skriv til {bot_name} på nytt.\n\n"
        "{alternatives}\n\n{emergency}"
    ),
    "end.chatter.queue_full": (
        "Takk for at du skriver. Akkurat nå venter veldig mange, så vi kan ikke ta imot flere i "
        "køen. Det betyr ikke at "
        "det du har på hjertet er mindre viktig. Prøv gjerne igjen om en stund: "
        "skriv til {bot_name} på nytt.\n\n{alternatives}\n\n{emergency}"
    ),
    "end.chatter.closed_hours": (
        "Takk for at du skriver. Chatten er stengt akkurat nå, så ingen frivillige kan svare deg "
        "her. Du er velkommen tilbake når vi har åpent igjen: skriv til {bot_name} på nytt.\n\n"
        "{alternatives}\n\n{emergency}"
    ),
    "end.chatter.no_consent": (
        "Takk for at du tok kontakt. Vi fikk ikke svar fra deg, så samtalen ble ikke startet. "
        "Det er helt greit.\n\n"
        f"{_NB_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.room_failed": (
        "Takk for at du skrev. Beklager, noe gikk galt hos oss, så samtalen kunne ikke starte. "
        "Prøv å skrive til {bot_name} igjen om litt.\n\n{emergency}"
    ),
    "end.chatter.room_lost": (
        "Beklager, vi mistet forbindelsen til samtalen din, så den ble avsluttet. "
        "Skriv til {bot_name} igjen for å starte en ny chat.\n\n{emergency}"
    ),
    # closing texts for the volunteer
    "end.volunteer.completed": f"Samtalen med Chatter #{{number}} er avsluttet av {{by}}.{_NB_TAG}",
    "end.volunteer.chatter_left": f"Chatter #{{number}} har forlatt samtalen.{_NB_TAG}",
    "end.volunteer.timed_out": (
        f"Tiden er ute. Samtalen med Chatter #{{number}} er avsluttet.{_NB_TAG}"
    ),
    "end.volunteer.chatter_idle": (
        f"Chatter #{{number}} har ikke skrevet på en stund, så samtalen er avsluttet.{_NB_TAG}"
    ),
    "end.volunteer.deleted": (
        "Chatter #{number} brukte hurtigslett. Samtalen er avsluttet, og rommet slettes nå.\n"
        "Rekker du det, merk samtalen med !tema og ett eller flere tema. Valg: {topics}."
    ),
    "end.volunteer.left_waiting": f"Chatter #{{number}} gikk ut av køen.{_NB_TAG}",
    "end.volunteer.queue_timeout": (
        f"Chatter #{{number}} ventet for lenge og fikk ikke svar.{_NB_TAG}"
    ),
    "end.volunteer.queue_full": f"Chatter #{{number}}: køen var full.{_NB_TAG}",
    "end.volunteer.closed_hours": f"Chatter #{{number}}: chatten var stengt.{_NB_TAG}",
    "end.volunteer.no_consent": (
        f"Chatter #{{number}} godtok ikke vilkårene, så samtalen startet ikke.{_NB_TAG}"
    ),
    "end.volunteer.room_failed": (
        f"Chatter #{{number}}: rommet kunne ikke lages, så samtalen er avsluttet.{_NB_TAG}"
    ),
    "end.volunteer.room_lost": (
        f"Forbindelsen til Chatter #{{number}} ble brutt (boten ble fjernet fra rommet deres), "
        f"så samtalen er avsluttet.{_NB_TAG}"
    ),
}

# --------------------------------------------------------------------------------------
# English

_EN_BACK = "If you want to talk again, start a new chat with {bot_name}. You are always welcome."
_EN_COMMANDS = (
    "• Write !end to end the conversation.\n"
    "• Write !delete to end it and delete everything at once.\n"
    "• På norsk: skriv !språk nb."
)
_EN_TAG = (
    "\nTag the conversation with !tag and one or more topics. Choices: {topics}."
    " Only anonymous counts are kept."
    "\nThe room will be deleted shortly. Take a break if you need one."
)

_EN_STAFF: dict[str, str] = {
    "help.my_shift": "your own shift: how long and how many conversations (numbers only)",
    "shift.on": (
        "Your shift: on since {since} ({minutes} min). {conversations} conversations this "
        "shift, {open} open now. Remember breaks, and tell a supervisor if something stays "
        "with you."
    ),
    "shift.off": (
        "You are not on duty now. Last shift: {conversations} conversations. Write !on when "
        "you want to start."
    ),
    "debrief.volunteer": (
        "That conversation was about something heavy. Consider a talk with a supervisor "
        "before you take the next one, and take a break if you need one. That is part of "
        "the work, not a sign that something went wrong."
    ),
    "staff.debrief": (
        "{alias} has ended a conversation that may need a debrief. Can a supervisor get in touch?"
    ),
    "help.reload": "(admins) read the config file again, without a restart",
    "help.status_full": (
        "(admins) who is on duty (alias), the queue, the longest wait and conversations per "
        "volunteer"
    ),
    "admins_only": "That command is for admins only.",
    "reload.done": (
        "The config has been read again and applies from now on. Volunteers: {added} added, "
        "{removed} removed (conversations under way go on until they end)."
    ),
    "reload.restart": "These changes need a restart and do not apply yet: {keys}.",
    "reload.refused": (
        "The config file has {problems} problem(s) and was not read; the old config still "
        "applies. Run helpline-bot check-config on the file to see them (they are also in "
        "the log)."
    ),
    "status.full": (
        "Full status: {waiting} in the queue (longest wait {longest_wait_minutes} min), "
        "{offers} offers unanswered.\n"
        "On duty (conversations): {on_duty_aliases}\n"
        "Off duty but in a conversation: {off_duty_aliases}"
    ),
}

EN: dict[str, str] = {
    **_EN_STAFF,
    "emergency": (
        "Is it urgent? Call:\n"
        "• 113 – medical emergency (Medisinsk nødtelefon), when life or health is in danger\n"
        "• 112 – police\n"
        "• 116 111 – Alarmtelefonen for barn og unge, for children and young people "
        "(free, open day and night)"
    ),
    "alternatives": (
        "Others you can talk to:\n"
        "• Kirkens SOS: 22 40 00 40 (open day and night)\n"
        "• Mental Helse hjelpetelefon: 116 123 (open day and night)"
    ),
    "fallback": "Sorry, something went wrong on our side. Please try again in a little while.",
    "persona.waiting": "{bot_name}",
    "word.yes": "yes",
    "word.no": "no",
    "word.by.chatter": "the chatter",
    "word.by.volunteer": "you",
    "word.by.none": "the system",
    "opens.today": "We open again today at {time}, and you are welcome back then.",
    "opens.tomorrow": "We open again tomorrow at {time}, and you are welcome back then.",
    "opens.weekday": "We open again on {day} at {time}, and you are welcome back then.",
    "opens.date": (
        "We open again on {day} {date} {month} at {time}, and you are welcome back then."
    ),
    "opens.unknown": "You are welcome back when we are open again.",
    "word.clock": "{hour}:{minute}",
    "word.weekdays": "Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday",
    "word.months": (
        "January, February, March, April, May, June, July, August, September, October, "
        "November, December"
    ),
    # intake and rejection
    "intake.already_open": (
        "You already have a conversation with us, and it is here. Just keep writing in this room."
    ),
    "intake.already_invited": (
        "You already have an invitation to a private room from {bot_name}. "
        "Accept it, and you're in."
    ),
    "intake.daily_cap": (
        "You have already had several conversations with us today, and there is a limit to how "
        "many we can have with one person in a day. There is nothing wrong with reaching out. "
        "You are welcome back tomorrow.\n\n{alternatives}\n\n{emergency}"
    ),
    "intake.invited": (
        "Hi! So that nobody else can read along, I've invited you to a private room. "
        "Accept the invitation to start."
    ),
    "intake.invited_plaintext": (
        "Hi! This chat isn't encrypted, so what you write here isn't fully private. "
        "Please don't write more here. I've invited you to a private, encrypted room: "
        "accept the invitation and we'll carry on there."
    ),
    "intake.plaintext_refused": (
        "Hi, and thank you for writing. This chat isn't encrypted, so we can't talk with "
        "you here. Start a new chat with {bot_name} with encryption turned on (or turn on "
        "encryption in this chat), and we're here for you.\n\n{emergency}"
    ),
    "intake.other_server": (
        "Hi, and thank you for writing. {bot_name} only takes conversations from accounts on "
        "{server}, so we can't talk with you from here.\n\n{alternatives}\n\n{emergency}"
    ),
    "intake.other_server_web": (
        "Hi, and thank you for writing. {bot_name} only takes conversations from accounts on "
        "{server}, so we can't talk with you from here. You can write to us without an "
        "account here: {url}\n\n{alternatives}\n\n{emergency}"
    ),
    "intake.room_failed": (
        "Sorry, we couldn't make a private room for you. "
        "Please try writing to us again in a little while.\n\n{emergency}"
    ),
    "reject.closed_hours": (
        "Hi, and thank you for writing. The chat is closed right now, so no volunteer can "
        "answer you here. {opens}\n\n{alternatives}\n\n{emergency}"
    ),
    "reject.queue_full": (
        "Hi, and thank you for writing. Right now a lot of people are waiting, so we can't take "
        "anyone else into the queue. That doesn't mean what's on your mind matters less. "
        "Please try again in a while.\n\n{alternatives}\n\n{emergency}"
    ),
    "blocked.direct": (
        "Hi. We can't take a chat from you here right now. If you need someone to talk to, "
        "these are there for you.\n\n{alternatives}\n\n{emergency}"
    ),
    "blocked.lobby": "Do you need someone to talk to now?\n\n{alternatives}\n\n{emergency}",
    # the chatter's side
    "consent": (
        "Before we start:\n"
        "• You are anonymous. The volunteer can't see your name or who you are.\n"
        "• Our volunteers have a duty of confidentiality.\n"
        "• The conversation is deleted when you are done. We only keep anonymous numbers, "
        "like how long it lasted.\n\n"
        "Write !yes if that's OK with you, and you'll get a place in the queue.\n\n{emergency}"
    ),
    "welcome": (
        "Hi, and welcome to {bot_name}! We're glad you reached out.\n\n"
        "You are number {position} in the queue. It will take about {minutes} minutes before a "
        "volunteer can talk with you. You can start writing while you wait.\n\n"
        "You are anonymous, and the conversation is deleted when you are done.\n"
        f"{_EN_COMMANDS}\n\n{{emergency}}"
    ),
    "welcome.nobody_on_duty": (
        "Hi, and welcome to {bot_name}! We're glad you reached out.\n\n"
        "Right now no volunteers are on duty. You can wait here. Someone may come, "
        "and then you'll be told. You are number {position} in the queue.\n\n"
        "You are anonymous, and the conversation is deleted when you are done.\n"
        f"{_EN_COMMANDS}\n\n{{alternatives}}\n\n{{emergency}}"
    ),
    "queue.update": (
        "You are now number {position} in the queue. It will take about {minutes} more minutes."
    ),
    "queue.update.no_estimate": (
        "You are now number {position} in the queue. No volunteers are on duty right now, "
        "but you can wait here."
    ),
    "held": (
        "Thank you. I'm keeping what you write, and the volunteer will see it "
        "as soon as the conversation starts."
    ),
    "held_full": (
        "You've written a lot while waiting, and that's completely fine. The volunteer will see "
        "what you've written so far. New messages won't be kept until the conversation starts."
    ),
    "accepted.chatter": (
        "{alias}, one of our volunteers, is here now. Write whatever is on your mind. "
        "{alias} is here to listen."
    ),
    "requeued": (
        "Sorry, the volunteer had to leave the conversation. It's not your fault. "
        "You are first in the queue, and another volunteer will come as soon as someone is free."
    ),
    "extend.chatter": "The conversation has been extended by {minutes} minutes.",
    "warn.chatter": "We have about {minutes} minutes left of the conversation.",
    "idle.warning": (
        "Are you still there? It's completely fine to take your time. If we don't hear from you, "
        "the conversation will end in {minutes} minutes."
    ),
    "rating.ask": (
        "If you like: how was it to talk with us? Answer with a number from 1 (not good) "
        "to 5 (very good). You don't have to answer."
    ),
    "rating.thanks": "Thank you for answering!",
    "language.unknown": "We don't have that language. You can choose: {available}.",
    "language.set": "OK, from now on I'll write in English.",
    # both sides
    "usage": "This is how you write that command: {usage}",
    "help": "Commands you can use:\n{lines}",
    "media_refused": (
        "Pictures, files and voice messages are not passed on here, only text. "
        "That's to protect privacy. Please put it into words instead."
    ),
    "media.too_big": (
        "The file is too big to pass on (the limit is {limit} MB). Nothing was sent."
    ),
    "media.type": (
        "This can't be passed on here. Only text and these kinds of file go through: "
        "{types}. Nothing was sent."
    ),
    "media.broken": (
        "The file could not be read, so it was not passed on. Please try sending it again."
    ),
    "media.not_yet": (
        "Pictures and files can be sent once a volunteer has joined the conversation. "
        "Nothing has been sent yet."
    ),
    "too_long": (
        "The message was too long to send ({length} characters, the limit is {limit}). "
        "Please split it into a few shorter messages."
    ),
    "rate_limited": (
        "Your last message didn't get through, because many messages came in a short time. "
        "Wait a moment and send it again."
    ),
    # command help
    "help.end": "end the conversation",
    "help.delete": "end the conversation and delete it at once",
    "help.language": "change language (nb = norsk, en = English)",
    "help.yes": "accept the terms and get a place in the queue",
    "help.help": "show this list",
    "help.on": "go on duty",
    "help.off": "go off duty (ongoing conversations continue)",
    "help.status": "queue, waiting time and how many are on duty (numbers only)",
    "help.extend": "extend the conversation, e.g. by 10m",
    "help.time": "how long the conversation has lasted and how much time is left",
    "help.say": "send a ready-made reply to the chatter",
    "help.tag": "tag the conversation with topics (kept only as anonymous counts)",
    "help.handback": "hand the conversation back; the chatter goes first in the queue",
    "help.alert": "ask a supervisor for help",
    "help.block": (
        "(supervisors) block the chatter of conversation N: 24 hours unless said otherwise, "
        "or e.g. 12h, 7d, 2w or permanent"
    ),
    "help.unblock": "(supervisors) lift the block set on conversation N",
    "help.transfer": (
        "hand the conversation to a named volunteer, or to the next available one; "
        "you keep it until someone has taken it"
    ),
    "help.note": "write a note only the next volunteer sees (never the chatter)",
    "help.join": "(supervisors) join the volunteer's room of conversation N",
    "help.leave": "(supervisors) leave the volunteer's room",
    # canned replies, said in the volunteer's voice
    "canned.unknown": "No reply by that name. You can use: {names}.",
    "canned.confidentiality": (
        "I have a duty of confidentiality, and you are anonymous here. I can't see your name or "
        "who you are. The conversation is deleted when we're done. You decide what you want "
        "to tell."
    ),
    "canned.emergency": (
        "What you're telling me sounds serious, and I'm glad you're telling me. "
        "If you are in danger right now, or have hurt yourself, call 113 straight away.\n\n"
        "{emergency}\n\nYou can still write to me here."
    ),
    "canned.welcome": (
        "Hi! I'm glad you reached out. I'm here to listen. "
        "Write whatever you like, at your own pace."
    ),
    # the volunteer's side
    "accepted.volunteer": (
        "Chatter #{number} is here. Language: {language}. Waited {waited} min. "
        "Time limit: {minutes} min.{requeued}\n"
        "Everything you write goes to the chatter. Commands: !time, !extend, !say NAME, !tag, "
        "!end, !handback, !alert (all: !help)."
    ),
    "accepted.volunteer.requeued": (
        " The chatter has talked with another volunteer before and was put first in the queue."
    ),
    "unknown_command": (
        "Unknown command. It was not sent to the chatter. Write !help to see the commands."
    ),
    "not_delivered_ended": "Not sent: the conversation has ended, or it is no longer yours.",
    "not_active": "That only works while the conversation is going on.",
    "status": (
        "Status: {waiting} in the queue (longest wait {longest_wait_minutes} min). "
        "{on_duty} on duty, {active} conversations going on, {offers} offers unanswered, "
        "{ending} ending."
    ),
    "tag.unknown": "Unknown topic: {unknown}. Choose from: {topics}.",
    "tag.saved": "Topics saved (only as anonymous counts): {tags}.",
    "time": (
        "The conversation has lasted {elapsed} min. {left} min left. "
        "You can extend by up to {extension_left} more min."
    ),
    "alert.sent": (
        "The supervisors have been told (only the conversation number, no content). "
        "Someone will get in touch as soon as they can."
    ),
    "extend.none_left": "The conversation can't be extended any more.",
    "extend.done": "Extended by {minutes} min. {left} min left.",
    "handback.done": "Chatter #{number} is first in the queue again, and you are out. Thank you!",
    "warn.volunteer": "{minutes} min left. You can extend by up to {extension_left} min (!extend).",
    "idle.volunteer": (
        "The chatter hasn't written for a while. The conversation ends in {minutes} min "
        "if nothing comes."
    ),
    "unreadable.chatter": (
        "Sorry, I couldn't read your last message. It's a problem with the encryption, "
        "not something you did. Could you send it again?"
    ),
    "unreadable.volunteer": (
        "Chatter #{number} wrote something that did not arrive (the encryption failed). "
        "The chatter has been asked to send it again."
    ),
    "unverified.device": (
        "Note: Chatter #{number} writes from a device that is not verified (an older app or "
        "a bridge). The conversation is encrypted, but nobody can confirm that only the "
        "chatter reads it."
    ),
    "unreadable.own": (
        "Your message could not be read (the encryption failed), so it was not passed on. "
        "Please send it again."
    ),
    "untrusted.own": (
        "Your message came from a device you have not verified, so it was not passed on "
        "and no command was run. Verify the device from a session you have already "
        "verified, or write from there. If it was not you, tell an admin."
    ),
    "staff.identity_changed": (
        "Security: {name} has a new encryption identity. Until an admin confirms it is "
        "right (helpline-bot reset-identity), {name} gets no encrypted messages from the "
        "bot. If {name} did not set up a new identity, the account may be misused."
    ),
    # the volunteers' room and DMs with staff
    "staff.dm_hint": "I only understand commands here. Write !help to see them.",
    "staff.alert": (
        "Supervisor needed: {alias} asks for help in the conversation with Chatter #{number} "
        "({minutes} min into the conversation). Accept the invite to the room to join, or "
        "write !join {number}."
    ),
    "staff.waiting": "New in the queue: Chatter #{number} ({language}).",
    "staff.still_waiting": (
        "Still waiting: Chatter #{number} ({language}), {minutes} min. Is anyone free? Write !on."
    ),
    "staff.requeued": (
        "Back in the queue, first in line: Chatter #{number} ({language}). "
        "The volunteer left the conversation."
    ),
    "staff.lapsed_off_duty": (
        "{alias} is set off duty after {lapses} unanswered offers. Write !on to come back."
    ),
    "staff.purge_failed": (
        "For supervisors: the deletion of the conversation with Chatter #{number} could not "
        "be verified. Some of it may still be on the server. Please ask an admin to check."
    ),
    "staff.purge_retrying": (
        "For supervisors: the deletion of the conversation with Chatter #{number} is waiting "
        "for the server, which is not answering as it should. The bot keeps trying by itself "
        "until it succeeds; until then the conversation is still on the server. Please tell "
        "an admin."
    ),
    "duty.not_volunteer": (
        "You are not on the list of volunteers, so you can't go on duty. Please ask an admin."
    ),
    "duty.on": "{alias} is on duty. {waiting} waiting in the queue now.",
    "duty.off": (
        "{alias} is off duty and gets no more offers. "
        "Ongoing conversations: {active} (they continue until they end)."
    ),
    "duty.off_ask": (
        "You are off duty. The conversation with Chatter #{number} goes on until you choose: "
        "!end to end it, or !handback to give it back to the queue (the chatter goes first)."
    ),
    # blocking, by supervisors
    "supervisors_only": "That command is for supervisors only.",
    "block.done": (
        "Chatter #{number} is blocked until {until} and can't start new conversations. "
        "If they write, they get the emergency numbers (at most once a day). "
        "Undo: !unblock {number}."
    ),
    "block.done_permanent": (
        "Chatter #{number} is blocked for good and can't start new conversations. "
        "If they write, they get the emergency numbers (at most once a day). "
        "Undo: !unblock {number}."
    ),
    "block.unknown": (
        "No conversation has the number {number}. A block must be set before the "
        "conversation is deleted; after that the bot no longer knows who it was."
    ),
    "block.volunteer": (
        "A supervisor has blocked Chatter #{number}: they can't start new conversations. "
        "This conversation goes on until you end it with !end."
    ),
    "unblock.done": "The block on Chatter #{number} is lifted.",
    "unblock.unknown": (
        "No block has the number {number}. It may have run out by itself, or been lifted already."
    ),
    # transfer and the handover note
    "transfer.asked": (
        "Chatter #{number} is offered to {alias}. You keep the conversation until {alias} "
        "has taken it."
    ),
    "transfer.chatter": (
        "The volunteer you were talking to has handed the conversation to another volunteer. "
        "It's not your fault. The new one can't see what you wrote before, so do tell them "
        "whatever you want them to know."
    ),
    "transfer.done": (
        "{alias} has taken over the conversation with Chatter #{number}, and you are out of it. "
        "Thank you!"
    ),
    "transfer.incoming": (
        "Chatter #{number} is transferred to you from {alias}. You can't see what was "
        "written before."
    ),
    "transfer.lost": (
        "{alias} did not take Chatter #{number}. You keep the conversation. "
        "Try !transfer again, or !handback to put the chatter first in the queue."
    ),
    "transfer.nobody": (
        "No available volunteer can take Chatter #{number} now. You keep the conversation. "
        "Try again in a while, or !alert."
    ),
    "transfer.pending": "The conversation is already offered to {alias}. Wait for an answer.",
    "transfer.unavailable": (
        "{alias} can't take the conversation now (not on duty, or not free). You keep it."
    ),
    "note.handover": "Note from the previous volunteer (the chatter can't see it):\n{note}",
    "note.saved": (
        "Note saved. Only the next volunteer who takes the conversation sees it; the chatter "
        "never does. It is deleted with the conversation."
    ),
    # supervisors at the volunteer's side, and a silent volunteer
    "duty.supervisor_on": (
        "You are on duty as a supervisor: you'll hear when a volunteer asks for help."
    ),
    "duty.supervisor_off": "You are off duty as a supervisor.",
    "join.already": "You are already in the room for Chatter #{number}.",
    "join.invited": (
        "You are invited to the volunteer's room for Chatter #{number}. Accept the invite. "
        "What you write there is seen by the volunteer only."
    ),
    "join.own": "Chatter #{number} is your own conversation.",
    "join.unknown": "No ongoing conversation has the number {number}.",
    "supervision.chatter": "A supervisor is helping the volunteer in this conversation.",
    "supervision.joined": (
        "Supervisor {name} is in the room. {name} sees what is sent here from now on; what "
        "{name} writes is seen by you only, never by the chatter. !leave takes them out."
    ),
    "supervision.left": "Supervisor {name} has left the room.",
    "silence.nudge": (
        "The chatter has been waiting {minutes} min for your answer. Are you there? "
        "If you need help, write !alert."
    ),
    "staff.silence": (
        "Supervisor needed: Chatter #{number} has waited {minutes} min for an answer from "
        "{alias}. Write !join {number} to join the room."
    ),
    # closing texts for the chatter
    "end.chatter.completed": (
        "Thank you for talking with us. The conversation has ended, and it will now be deleted."
        f"\n\n{_EN_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.chatter_left": (
        "You have left the conversation. Thank you for reaching out. "
        "The conversation will now be deleted.\n\n"
        f"{_EN_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.timed_out": (
        "The time for the conversation is up, so it has ended now. Thank you for talking with "
        "us. The conversation will be deleted.\n\n"
        f"{_EN_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.chatter_idle": (
        "It has been quiet for a while, so we have ended the conversation. That's completely "
        "fine. Thank you for reaching out. The conversation will now be deleted.\n\n"
        f"{_EN_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.deleted": (
        "The conversation has ended and been deleted. Thank you for reaching out.\n\n"
        f"{_EN_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.left_waiting": (
        f"You have left the queue. Thank you for reaching out.\n\n{_EN_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.queue_timeout": (
        "Thank you for reaching out. We're sorry that nobody could talk with you this time. "
        "It's not because what's on your mind matters less. "
        "Right now many people are reaching out. "
        "Please try again later: write to {bot_name} again.\n\n"
        "{alternatives}\n\n{emergency}"
    ),
    "end.chatter.queue_full": (
        "Thank you for writing. Right now a lot of people are waiting, so we can't take anyone "
        "else into the queue. "
        "That doesn't mean what's on your mind matters less. Please try again in a while: "
        "write to {bot_name} again.\n\n{alternatives}\n\n{emergency}"
    ),
    "end.chatter.closed_hours": (
        "Thank you for writing. The chat is closed right now, so no volunteer can answer you "
        "here. You are welcome back when we are open again: write to {bot_name} again.\n\n"
        "{alternatives}\n\n{emergency}"
    ),
    "end.chatter.no_consent": (
        "Thank you for reaching out. We didn't get an answer from you, so the conversation "
        "didn't start. "
        "That's completely fine.\n\n"
        f"{_EN_BACK}\n\n{{emergency}}"
    ),
    "end.chatter.room_failed": (
        "Thank you for writing. Sorry, something went wrong on our side, so the conversation "
        "couldn't start. "
        "Please try writing to {bot_name} again in a little while.\n\n{emergency}"
    ),
    "end.chatter.room_lost": (
        "Sorry, we lost the connection to your conversation, so it has ended. "
        "Write to {bot_name} again to start a new chat.\n\n{emergency}"
    ),
    # closing texts for the volunteer
    "end.volunteer.completed": (
        f"The conversation with Chatter #{{number}} was ended by {{by}}.{_EN_TAG}"
    ),
    "end.volunteer.chatter_left": f"Chatter #{{number}} has left the conversation.{_EN_TAG}",
    "end.volunteer.timed_out": (
        f"Time is up. The conversation with Chatter #{{number}} has ended.{_EN_TAG}"
    ),
    "end.volunteer.chatter_idle": (
        f"Chatter #{{number}} hasn't written for a while, so the conversation has ended.{_EN_TAG}"
    ),
    "end.volunteer.deleted": (
        "Chatter #{number} used the quick delete. The conversation has ended, and the room is "
        "being deleted now.\nIf you have time, tag the conversation with !tag and one or more "
        "topics. Choices: {topics}."
    ),
    "end.volunteer.left_waiting": f"Chatter #{{number}} left the queue.{_EN_TAG}",
    "end.volunteer.queue_timeout": (
        f"Chatter #{{number}} waited too long and got no answer.{_EN_TAG}"
    ),
    "end.volunteer.queue_full": f"Chatter #{{number}}: the queue was full.{_EN_TAG}",
    "end.volunteer.closed_hours": f"Chatter #{{number}}: the chat was closed.{_EN_TAG}",
    "end.volunteer.no_consent": (
        f"Chatter #{{number}} did not accept the terms, so the conversation didn't start.{_EN_TAG}"
    ),
    "end.volunteer.room_failed": (
        f"Chatter #{{number}}: the room could not be made, so the conversation has ended.{_EN_TAG}"
    ),
    "end.volunteer.room_lost": (
        f"The connection to Chatter #{{number}} was lost (the bot was removed from their "
        f"room), so the conversation has ended.{_EN_TAG}"
    ),
}

CATALOGUE: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"nb": MappingProxyType(NB), "en": MappingProxyType(EN)}
)
"""language -> key -> template. Every language has exactly the keys of `PARAMS`."""

_LAST_RESORT = "Sorry, something went wrong. / Beklager, noe gikk galt."
_EMPTY_LIST = "–"

# `{{` and `}}` are literal braces; `{name}` is a placeholder. Anything else, including
# `{0}`, `{x.y}`, `{x[0]}` and `{x!r:>9}`, is not a placeholder and stays as written.
_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill(template: str, lookup: Mapping[str, str] | Any) -> str:
    """Fill plain `{name}` placeholders from `lookup` (anything with `get(name)`).

    A name without a value stays visible as `{name}`. Nothing is evaluated, and a value is
    inserted as it is: a `{...}` inside a value is not filled in again.
    """

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)[0]  # `{{` -> `{`, `}}` -> `}`
        value = lookup.get(name)
        return match.group(0) if value is None else str(value)

    return _FIELD.sub(one, template)


def placeholders(template: str) -> set[str]:
    """The placeholder names a template uses, as `fill` sees them."""
    return {m.group(1) for m in _FIELD.finditer(template) if m.group(1)}


class Texts:
    """Renders the core's `Text`s in a language, with the organisation's overrides.

    `overrides` is the config's `messages:` section, language -> key -> template. A text is
    looked up in the override for the language, then the catalogue for that language; a
    language the bot has no texts for falls back to `default_language`, and a key missing
    in a language (a language only present in the overrides) to the default language too.
    """

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, str]] = MappingProxyType({}),
        *,
        default_language: str = DEFAULT_LANGUAGE,
        bot_name: str = "Alltidhjelp",
    ) -> None:
        self._overrides = {
            lang: {k: v for k, v in texts.items() if isinstance(v, str)}
            for lang, texts in overrides.items()
            if isinstance(texts, Mapping)
        }
        self.languages = frozenset(CATALOGUE) | frozenset(self._overrides)
        self.default_language = (
            default_language if default_language in self.languages else DEFAULT_LANGUAGE
        )
        self.bot_name = bot_name

    # -- look-up -------------------------------------------------------------------------

    def template(self, key: str, language: str) -> str | None:
        """The template for `key` in `language` (with fallbacks), or None for an unknown key."""
        for lang in dict.fromkeys([self._language(language), self.default_language, "nb"]):
            text = self._overrides.get(lang, {}).get(key)
            if text is None:
                text = CATALOGUE.get(lang, {}).get(key)
            if text is not None:
                return text
        return None

    def _language(self, language: str) -> str:
        return language if language in self.languages else self.default_language

    # -- rendering -------------------------------------------------------------------------

    def render(self, text: Text, language: str) -> str:
        """The words for `text` in `language`. Never raises; an unknown key gives a generic
        apology rather than an empty message."""
        try:
            return self._render(text.key, dict(text.params), language)
        except Exception:  # a text must never break the conversation
            return _LAST_RESORT

    def _render(self, key: str, params: dict[str, Any], language: str) -> str:
        lang = self._language(language)
        # An estimate the core could not make is not shown as "about ? minutes".
        if params.get("minutes", 0) is None and key in ("welcome", "queue.update"):
            key = "welcome.nobody_on_duty" if key == "welcome" else "queue.update.no_estimate"
        template = self.template(key, lang)
        if template is None:
            key, params = "fallback", {}
            template = self.template(key, lang) or _LAST_RESORT
        return fill(template, _Values(self, key, params, lang))

    def _plain(self, key: str, lang: str) -> str:
        """A text used inside another one (emergency numbers, words): only {bot_name}."""
        template = self.template(key, lang)
        if template is None:
            return ""
        return fill(template, {"bot_name": self.bot_name})

    def opening(self, opens: Any, language: str) -> str:
        """The sentence that says when the line opens next: `opens` as
        `bot.core.hours.opening` gives it (on the helpline's clock), or None."""
        lang = self._language(language)
        try:
            days, weekday, date = int(opens["days"]), int(opens["weekday"]), int(opens["day"])
            month, hour, minute = int(opens["month"]), int(opens["hour"]), int(opens["minute"])
            day = self._words("word.weekdays", lang)[weekday]
            month_name = self._words("word.months", lang)[month - 1]
        except (TypeError, KeyError, ValueError, IndexError):
            return self._plain("opens.unknown", lang)
        clock = self.template("word.clock", lang) or "{hour}:{minute}"
        when = {
            "time": fill(clock, {"hour": f"{hour:02d}", "minute": f"{minute:02d}"}),
            "day": day,
            "date": str(date),
            "month": month_name,
            "bot_name": self.bot_name,
        }
        key = {0: "opens.today", 1: "opens.tomorrow"}.get(days, "opens.weekday")
        if days >= 7:  # a weekday name alone would be next week's
            key = "opens.date"
        return fill(self.template(key, lang) or "", when)

    def _words(self, key: str, lang: str) -> list[str]:
        """A list text (weekdays, months), comma-separated."""
        return [w.strip() for w in (self.template(key, lang) or "").split(",")]

    def _value(self, key: str, name: str, value: Any, lang: str) -> str:
        if name == "opens":
            return self.opening(value, lang)
        if key == "help" and name == "lines" and isinstance(value, list | tuple):
            return "\n".join(self._help_line(item, lang) for item in value)
        if key == "accepted.volunteer" and name == "requeued":
            return self._plain("accepted.volunteer.requeued", lang) if value else ""
        if key.startswith("end.volunteer.") and name == "by":
            return self._plain(f"word.by.{value or 'none'}", lang) or str(value)
        if value is None:
            return "?"
        if isinstance(value, bool):
            return self._plain("word.yes" if value else "word.no", lang)
        if isinstance(value, float):
            shown = f"{value:g}"  # 10.0 -> 10, 0.5 -> 0.5
            return shown.replace(".", ",") if lang == "nb" else shown
        if isinstance(value, list | tuple | set | frozenset):
            items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
            return ", ".join(str(v) for v in items) or _EMPTY_LIST
        return str(value)

    def _help_line(self, item: Any, lang: str) -> str:
        if isinstance(item, list | tuple) and len(item) == 2:
            usage, help_key = item
            return f"{usage} — {self._plain(str(help_key), lang)}".rstrip(" —")
        return str(item)


class _Values:
    """The values one template may use, computed only when the template asks for them."""

    def __init__(self, texts: Texts, key: str, params: dict[str, Any], lang: str) -> None:
        self._texts, self._key, self._params, self._lang = texts, key, params, lang

    def get(self, name: str) -> str | None:
        if name in self._params:
            return self._texts._value(self._key, name, self._params[name], self._lang)
        if name == "bot_name":
            return self._texts.bot_name
        if name in ("emergency", "alternatives") and name != self._key:
            return self._texts._plain(name, self._lang)
        return None
