"""The report's pure part: seeded statistics in, exact published figures out; the <5 rule;
an empty period; the charts looked at through their matplotlib objects. No database."""

from __future__ import annotations

from datetime import date

import pytest
from matplotlib.figure import Figure

from bot.core.model import StatsRecord
from bot.report.charts import DPI, HEAT_SIZE, HIDDEN_GID, SIZE, build_charts
from bot.report.figures import Count, Fate, Report, Spread, Table, build_report, fate
from bot.report.summary import summary
from bot.report.texts import EN, NB, WORDS, Words

MON, TUE, THU = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 5)
SUN_BEFORE = date(2026, 3, 1)  # ISO week 9; Monday the 2nd starts week 10


def rec(
    day: date,
    outcome: str,
    *,
    wait: int | None = None,
    duration: int | None = None,
    tags: tuple[str, ...] = (),
    rating: int | None = None,
    purge: str = "verified",
    told: int | None = None,
) -> StatsRecord:
    return StatsRecord(
        day=day,
        language="nb",
        source="direct",
        outcome=outcome,
        wait_seconds=wait,
        duration_seconds=duration,
        requeues=0,
        tags=tags,
        rating=rating,
        purge_result=purge,
        told_wait_minutes=told,
    )


def seeded() -> list[StatsRecord]:
    """Monday: 6 answered, 1 left. Tuesday: 2 turned away closed (in the DM), 5 full.
    Thursday: a room that could not be made."""
    answered = [
        rec(
            MON,
            "completed",
            wait=60 * k if k < 6 else 600,
            duration=600 * k,
            tags=("skole", "angst", "angst") if k == 6 else ("angst",),
            rating=5 if k == 6 else 4 if k < 6 else None,
            told=5,
        )
        for k in range(1, 7)
    ]
    return [
        *answered,
        rec(MON, "left_waiting", purge="verified_without_admin", told=5),
        *[rec(TUE, "closed_hours", purge="nothing_to_purge") for _ in range(2)],
        *[rec(TUE, "queue_full") for _ in range(5)],
        rec(THU, "room_failed", purge="failed:room_still_present"),
    ]


HOURS = {(MON, 20): 6, (MON, 21): 1, (TUE, 9): 7, (THU, 3): 1}
BLOCKS = {TUE: 1}


def seeded_report(**kw: date) -> Report:
    return build_report(seeded(), HOURS, BLOCKS, kw.get("since", SUN_BEFORE), kw.get("until", THU))


def table(report: Report, name: str) -> Table:
    return next(t for t in report.tables() if t.name == name)


# -- the rule: small numbers are not published ----------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown", "text"), [(0, 0, "0"), (1, None, "<5"), (4, None, "<5"), (5, 5, "5")]
)
def test_a_count_from_1_to_4_is_shown_as_under_5(value: int, shown: int | None, text: str) -> None:
    assert Count(value).shown == shown
    assert str(Count(value)) == text


def test_a_median_over_fewer_than_5_is_not_published() -> None:
    assert Spread.of([60, 120, 180, 240]) == Spread(Count(4), None, None)
    assert Spread.of([60, 120, 180, 240, 300]) == Spread(Count(5), 3.0, 5.0)


def test_hidden_counts_sort_as_equals_so_their_order_tells_nothing() -> None:
    records = [rec(MON, "completed", tags=("b",)) for _ in range(3)]
    records += [rec(MON, "completed", tags=("a",))]
    report = build_report(records, {}, {})
    assert [t.label for t in report.topics] == ["a", "b"]


# -- seeded statistics -> exact figures ------------------------------------------------------


def test_what_came_of_each_contact() -> None:
    fates = [fate(r) for r in seeded()]
    assert fates == [Fate.ANSWERED] * 6 + [Fate.LEFT] + [Fate.CLOSED] * 2 + [Fate.FULL] * 5 + [
        Fate.OTHER
    ]


def test_per_day_lists_every_day_of_the_period_with_small_counts_hidden() -> None:
    t = table(seeded_report(), "per_day")
    assert t.header == ("day", "contacts", "answered", "left", "closed", "full", "other")
    assert t.rows == (
        ("2026-03-01", "0", "0", "0", "0", "0", "0"),
        ("2026-03-02", "7", "6", "<5", "0", "0", "0"),
        ("2026-03-03", "7", "0", "0", "<5", "5", "0"),
        ("2026-03-04", "0", "0", "0", "0", "0", "0"),
        ("2026-03-05", "<5", "0", "0", "0", "0", "<5"),
    )


def test_without_dates_the_period_runs_from_the_first_to_the_last_day_recorded() -> None:
    report = build_report(seeded(), HOURS, BLOCKS)
    assert (report.first, report.last) == (MON, THU)
    assert [r[0] for r in table(report, "per_day").rows] == [
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
    ]


def test_days_outside_the_period_are_left_out() -> None:
    report = seeded_report(since=TUE, until=TUE)
    assert table(report, "per_day").rows == (("2026-03-03", "7", "0", "0", "<5", "5", "0"),)
    assert table(report, "wait_per_week").rows == (("2026-W10", "0", "", ""),)
    assert table(report, "weekday_hour").rows[1][1 + 9] == "7"
    assert table(report, "weekday_hour").rows[0][1 + 20] == "0"


def test_weekday_by_hour_sums_the_period_and_hides_small_cells() -> None:
    t = table(seeded_report(), "weekday_hour")
    assert t.header == ("weekday", *(f"{h:02d}" for h in range(24)))
    assert [row[0] for row in t.rows] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    cells = {(d, h): t.rows[d][1 + h] for d in range(7) for h in range(24)}
    assert {k: v for k, v in cells.items() if v != "0"} == {
        (0, 20): "6",
        (0, 21): "<5",
        (1, 9): "7",
        (3, 3): "<5",
    }


def test_waits_and_lengths_per_iso_week_in_minutes() -> None:
    report = seeded_report()
    # Waits 1, 2, 3, 4, 5 and 10 minutes: median 3.5, nearest-rank p90 the 6th value.
    assert table(report, "wait_per_week").rows == (
        ("2026-W09", "0", "", ""),
        ("2026-W10", "6", "3.5", "10.0"),
    )
    assert table(report, "length_per_week").rows == (
        ("2026-W09", "0", "", ""),
        ("2026-W10", "6", "35.0", "60.0"),
    )
    assert table(report, "wait_per_week").header == (
        "week",
        "conversations",
        "median_minutes",
        "p90_minutes",
    )


def test_topics_outcomes_ratings_purges_and_blocks() -> None:
    report = seeded_report()
    # A topic tagged twice in one conversation counts once.
    assert table(report, "topics").rows == (("angst", "6"), ("skole", "<5"))
    assert table(report, "outcomes").rows == (
        ("completed", "6"),
        ("queue_full", "5"),
        ("closed_hours", "<5"),
        ("left_waiting", "<5"),
        ("room_failed", "<5"),
    )
    assert table(report, "ratings").rows == (
        ("1", "0"),
        ("2", "0"),
        ("3", "0"),
        ("4", "5"),
        ("5", "<5"),
    )
    assert table(report, "purge_results").rows == (
        ("verified", "11"),
        ("failed:room_still_present", "<5"),
        ("nothing_to_purge", "<5"),
        ("verified_without_admin", "<5"),
    )
    assert table(report, "blocks_per_week").rows == (("2026-W10", "<5"),)


def test_the_wait_told_against_the_wait_had() -> None:
    report = seeded_report()
    t = table(report, "wait_estimate")
    assert t.header == (
        "told_minutes",
        "told",
        "answered_within",
        "answered_later",
        "not_answered",
        "wait_median_minutes",
        "wait_p90_minutes",
    )
    # Told 5 minutes: five answered within 5 (1-5 min), one after 10, one went.
    assert t.rows == (("5", "7", "5", "<5", "<5", "3.5", "10.0"),)
    assert (report.estimate_within, report.estimate_answered) == (Count(5), Count(6))


def test_no_ratings_means_an_empty_ratings_table() -> None:
    report = build_report([rec(MON, "completed", wait=60)], {}, {})
    assert table(report, "ratings").rows == ()


# -- an empty period --------------------------------------------------------------------------


def test_an_empty_period_gives_every_table_with_its_header_and_no_rows() -> None:
    report = build_report(seeded(), HOURS, BLOCKS, date(2027, 1, 1), date(2027, 1, 31))
    assert report.empty
    tables = report.tables()
    assert len(tables) == 10
    for t in tables:
        assert t.header
        assert t.rows == (), t.name
    assert build_charts(report, EN) == {}
    text = summary(report, EN, since=date(2027, 1, 1), until=date(2027, 1, 31), out="r", files=[])
    assert text.splitlines()[:2] == [
        "Report for 2027-01-01 to 2027-01-31",
        "No contacts in this period.",
    ]


def test_no_statistics_at_all_and_no_dates() -> None:
    report = build_report([], {}, {})
    assert (report.first, report.last, report.empty) == (None, None, True)
    text = summary(report, NB, since=None, until=None, out="r", files=["per_day.csv"])
    assert text.splitlines() == [
        "Rapport for alle dager",
        "Ingen henvendelser i perioden.",
        "Tall fra 1 til 4 vises som «<5».",
        "Skrevet til r: per_day.csv.",
    ]


# -- the summary -----------------------------------------------------------------------------


def test_the_summary_says_we_answered_n_of_m_with_small_numbers_hidden() -> None:
    text = summary(seeded_report(), EN, since=SUN_BEFORE, until=THU, out="out", files=["a.csv"])
    assert text.splitlines() == [
        "Report for 2026-03-01 to 2026-03-05",
        "Contacts: 15.",
        "We answered 6 of 15 (40%).",
        "Left before an answer: <5. Turned away: closed <5, queue full 5. Other: <5.",
        "Wait for an answer: median 3.5 min, 90% within 10.0 min (6 answered).",
        "Conversation length: median 35.0 min, 90% within 60.0 min.",
        "Most frequent topics: angst (6), skole (<5).",
        "Wait estimate kept: 5 of 6 answered within the wait told.",
        "Ratings: 1: 0, 2: 0, 3: 0, 4: 5, 5: <5.",
        "Deletion: verified 11, failed: room_still_present <5, nothing to delete <5, "
        "verified without admin <5.",
        "Blocked: <5.",
        'Counts from 1 to 4 are shown as "<5".',
        "Written to out: a.csv.",
    ]


def test_no_share_is_given_when_a_count_behind_it_is_hidden() -> None:
    records = [rec(MON, "completed", wait=60) for _ in range(3)]
    records += [rec(MON, "queue_full") for _ in range(5)]
    text = summary(build_report(records, {}, {}), EN, since=None, until=None, out="o", files=[])
    assert "We answered <5 of 8." in text.splitlines()
    assert "Wait for an answer: too few answered to show a median and 90%." in text


def test_both_languages_have_every_word() -> None:
    assert set(WORDS) == {"nb", "en"}
    for words in (NB, EN):
        assert set(words.fates) == set(Fate)
        assert len(words.weekdays) == 7
    assert set(NB.outcomes) == set(EN.outcomes)


# -- the charts ------------------------------------------------------------------------------


def charts(words: Words = EN) -> dict[str, Figure]:
    return build_charts(seeded_report(), words)


def pixels(fig: Figure) -> tuple[int, int]:
    w, h = fig.get_size_inches() * fig.dpi
    return round(w), round(h)


def test_every_chart_has_its_size_and_title() -> None:
    figs = charts()
    assert set(figs) == {
        "contacts_per_day",
        "answered_per_day",
        "weekday_hour",
        "wait_per_week",
        "length_per_week",
        "topics",
        "outcomes",
        "ratings",
        "purge_results",
        "wait_estimate",
    }
    titles = {name: fig.axes[0].get_title() for name, fig in figs.items()}
    assert titles == {
        "contacts_per_day": EN.title_contacts,
        "answered_per_day": EN.title_answered,
        "weekday_hour": EN.title_heat,
        "wait_per_week": EN.title_wait,
        "length_per_week": EN.title_length,
        "topics": EN.title_topics,
        "outcomes": EN.title_outcomes,
        "ratings": EN.title_ratings,
        "purge_results": EN.title_purges,
        "wait_estimate": EN.title_estimate,
    }
    for name, fig in figs.items():
        size = HEAT_SIZE if name == "weekday_hour" else SIZE
        assert pixels(fig) == (round(size[0] * DPI), round(size[1] * DPI)), name
    assert charts(NB)["contacts_per_day"].axes[0].get_title() == "Henvendelser per dag"


def test_contacts_per_day_draws_hidden_days_as_hatched_bars_up_to_5() -> None:
    ax = charts()["contacts_per_day"].axes[0]
    shown = [p.get_height() for p in ax.patches if p.get_gid() != HIDDEN_GID]
    hidden = [p for p in ax.patches if p.get_gid() == HIDDEN_GID]
    # Days: 1 March 0, 2 March 7, 3 March 7, 4 March 0, 5 March <5 (drawn 0, then hatched).
    assert shown == [0, 7, 7, 0, 0]
    assert [(round(p.get_x() + p.get_width() / 2), p.get_height()) for p in hidden] == [(4, 5)]
    assert hidden[0].get_hatch() == "///"
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "2026-03-01",
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
    ]
    assert EN.hidden_legend in [t.get_text() for t in ax.get_legend().get_texts()]


def test_answered_per_day_has_a_series_per_fate() -> None:
    ax = charts()["answered_per_day"].axes[0]
    labels = [c.get_label() for c in ax.containers]
    assert EN.fates[Fate.ANSWERED] in labels
    assert EN.fates[Fate.FULL] in labels
    answered = next(c for c in ax.containers if c.get_label() == EN.fates[Fate.ANSWERED])
    assert [p.get_height() for p in answered.patches] == [0, 6, 0, 0, 0]
    full = next(c for c in ax.containers if c.get_label() == EN.fates[Fate.FULL])
    assert [p.get_height() for p in full.patches] == [0, 0, 5, 0, 0]


def test_the_heat_map_leaves_hidden_cells_blank_and_says_under_5() -> None:
    ax = charts()["weekday_hour"].axes[0]
    values = ax.images[0].get_array()
    assert values.shape == (7, 24)
    assert values[0, 20] == 6
    assert values[1, 9] == 7
    assert values[2, 0] == 0
    # Hidden cells are NaN, which imshow masks: no colour, no value.
    assert values.mask[0, 21]
    assert values.mask[3, 3]
    assert values.mask.sum() == 2
    texts = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    assert texts == {(0, 20): "6", (0, 21): "<5", (1, 9): "7", (3, 3): "<5"}
    assert [t.get_text() for t in ax.get_yticklabels()] == list(EN.weekdays)


def test_waits_per_week_draw_median_and_p90_and_leave_out_small_weeks() -> None:
    ax = charts()["wait_per_week"].axes[0]
    median, p90 = ax.containers
    assert [p.get_height() for p in median.patches] == [0.0, 3.5]
    assert [p.get_height() for p in p90.patches] == [0.0, 10.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2026-W09", "2026-W10"]
    few = build_report([rec(MON, "completed", wait=60) for _ in range(2)], {}, {})
    ax = build_charts(few, EN)["wait_per_week"].axes[0]
    assert [t.get_text() for t in ax.texts] == ["<5"]
    assert [p.get_height() for p in ax.containers[0].patches] == [0.0]


def test_topics_and_purges_are_labelled_and_hidden_counts_hatched() -> None:
    ax = charts()["topics"].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["angst", "skole"]
    assert [p.get_width() for p in ax.containers[0].patches] == [6, 0]
    assert [(p.get_width(), p.get_gid()) for p in ax.containers[1].patches] == [(5, HIDDEN_GID)]
    ax = charts(NB)["purge_results"].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "bekreftet",
        "feilet: room_still_present",
        "ingenting å slette",
        "bekreftet uten admin",
    ]


def test_the_estimate_chart_sets_the_wait_told_beside_the_wait_had() -> None:
    ax = charts()["wait_estimate"].axes[0]
    told, median, p90 = ax.containers
    assert [p.get_height() for p in told.patches] == [5.0]
    assert [p.get_height() for p in median.patches] == [3.5]
    assert [p.get_height() for p in p90.patches] == [10.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5"]


def test_ratings_chart_shows_1_to_5() -> None:
    ax = charts()["ratings"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4", "5"]
    assert [p.get_height() for p in ax.containers[0].patches] == [0, 0, 0, 5, 0]
    assert [p.get_gid() for p in ax.containers[1].patches] == [HIDDEN_GID]
