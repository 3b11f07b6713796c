"""The report's short text summary: the figures a board asks for first, in nb or en.

Pure, like `figures`: every number comes from the `Report`, already suppressed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from bot.report.figures import Count, Fate, Report, Spread
from bot.report.texts import Words, purge_label

TOP_TOPICS = 5


def summary(
    report: Report,
    words: Words,
    *,
    since: date | None,
    until: date | None,
    out: str,
    files: Sequence[str],
) -> str:
    first = since or report.first
    last = until or report.last
    lines = [
        words.heading.format(first=first or "…", last=last or "…")
        if first or last
        else words.all_days
    ]
    if report.contacts.value == 0:
        lines.append(words.nothing)
    else:
        lines += _figures(report, words)
    if report.blocks:
        lines.append(
            words.blocks_line.format(blocks=Count(sum(t.count.value for t in report.blocks)))
        )
    lines.append(words.rule_line)
    lines.append(words.files_line.format(out=out, files=", ".join(files)))
    return "\n".join(lines)


def _figures(report: Report, words: Words) -> list[str]:
    fates = report.fates
    answered = words.answered_line.format(answered=fates[Fate.ANSWERED], contacts=report.contacts)
    shown_answered, shown_contacts = fates[Fate.ANSWERED].shown, report.contacts.shown
    if shown_answered is not None and shown_contacts:
        percent = round(100 * shown_answered / shown_contacts)
        answered += words.answered_share.format(percent=percent)
    lines = [
        words.contacts_line.format(contacts=report.contacts),
        answered + ".",
        words.fates_line.format(
            left=fates[Fate.LEFT],
            closed=fates[Fate.CLOSED],
            full=fates[Fate.FULL],
            other=fates[Fate.OTHER],
        ),
        _spread(words.wait_line, words.wait_few, report.wait),
        _spread(words.length_line, words.length_few, report.length),
    ]
    if report.topics:
        top = ", ".join(f"{t.label} ({t.count})" for t in report.topics[:TOP_TOPICS])
        lines.append(words.topics_line.format(topics=top))
    if report.estimate_answered.value:
        lines.append(
            words.estimate_line.format(
                within=report.estimate_within, answered=report.estimate_answered
            )
        )
    else:
        lines.append(words.estimate_none)
    if report.ratings:
        ratings = ", ".join(f"{t.label}: {t.count}" for t in report.ratings)
        lines.append(words.ratings_line.format(ratings=ratings))
    purges = ", ".join(f"{purge_label(words, t.label)} {t.count}" for t in report.purges)
    lines.append(words.purges_line.format(purges=purges))
    return lines


def _spread(line: str, few: str, spread: Spread) -> str:
    if spread.median is None or spread.p90 is None:
        return few
    return line.format(median=spread.median, p90=spread.p90, count=spread.count)
