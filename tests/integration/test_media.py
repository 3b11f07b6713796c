"""Media with `privacy.relay_media`: a real picture both ways, each side downloading and
decrypting what the bot sent it, and the purge deleting every copy on the server.

The bot never forwards a file: it uploads its own copy under a new key, with a neutral
name. So after a conversation with one picture each way, four files were on the server
(two originals, two copies); after the purge, the admin API and the media download
endpoint know none of them, and the purge counts as verified.

Also: a file whose bytes are not what its label says (a GIF sent as image/png), a file
over the size limit that does not declare its size, and the default (relaying off), all
refused with a text to the sender and nothing reaching the other side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.devtools.images import png, png_pixels
from tests.integration.test_purge import (
    PURGE_TIMEOUT,
    data_dir,
    media_exists,
    query,
    start_conversation,
    wait_purged,
)
from tests.integration.waits import wait_until
from tests.integration.world import World, assert_logs_clean, build_world, next_from_bot

pytestmark = pytest.mark.timeout(120)

GIF = (  # a 1x1 GIF
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


@pytest.fixture
async def open_world(
    synapse: Any, admin: Any, make_user: Any, make_client: Any, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[World]]]:
    """`await open_world(**config sections)`: a running helpline that purges at once,
    with the harness admin's token (as a deployment's bot would, with an admin's)."""
    worlds: list[World] = []

    async def _open(**sections: Any) -> World:
        sections.setdefault("privacy", {}).setdefault("purge_after", "0s")
        w = await build_world(
            synapse, make_user, make_client, tmp_path, admin_token=admin.access_token, **sections
        )
        worlds.append(w)
        return w

    yield _open
    for w in worlds:
        await w.close()


def copy_of(content: dict[str, Any]) -> str:
    return str(content["file"]["url"])


async def test_a_picture_goes_both_ways_as_the_bots_copy_and_the_purge_deletes_all_four(
    synapse: Any, admin: Any, make_user: Any, make_client: Any, open_world: Any
) -> None:
    w: World = await open_world(privacy={"relay_media": True})
    c = await start_conversation(w, make_user, make_client)
    chatter, volunteer = c.chatter.client, w.volunteers[0].client

    # The chatter's picture, with a telling name, more than type and size declared, and
    # a comment inside the file (where an app writes where a photo was taken).
    picture = png(7, 5, seed=1)
    sent = png(7, 5, seed=1, text="Storgata 1, Oslo")
    _, original = await chatter.send_image(
        c.chatter.room,
        sent,
        filename="IMG_Oslo_Grünerløkka_hjemme.png",
        info={"mimetype": "image/png", "size": len(sent), "w": 7, "h": 5, "xyz.where": "hjemme"},
    )
    got = await next_from_bot(w, volunteer, c.vroom)
    assert got.msgtype == "m.image"
    assert set(got.content) == {"msgtype", "body", "info", "file", "m.mentions"}
    assert got.content["body"] == "image.png"
    assert got.content["info"] == {"mimetype": "image/png", "size": len(picture), "w": 7, "h": 5}
    copy = copy_of(got.content)
    assert copy != original
    received = await volunteer.download_attachment(got.content)
    assert received == picture  # the same pixels, without the comment
    assert b"Storgata" not in received
    assert png_pixels(received) == png_pixels(sent)

    # And the volunteer's picture back to the chatter.
    answer = png(6, 4, seed=2)
    _, original_back = await volunteer.send_image(c.vroom, answer, info={})
    got_back = await next_from_bot(w, chatter, c.chatter.room)
    assert got_back.msgtype == "m.image"
    assert got_back.content["info"] == {
        "mimetype": "image/png",
        "size": len(answer),
        "w": 6,
        "h": 4,
    }
    copy_back = copy_of(got_back.content)
    assert await chatter.download_attachment(got_back.content) == answer

    files = [original, copy, original_back, copy_back]
    assert len(set(files)) == 4
    for mxc in files:
        assert await media_exists(synapse, admin, mxc)

    # The conversation ends; the purge deletes the rooms and all four files.
    await chatter.send_text(c.chatter.room, "!slutt")
    await wait_purged(w, synapse, admin, c.rooms, c.said)
    await wait_until(lambda: "purge finished" in w.logs.getvalue(), PURGE_TIMEOUT, "the purge")
    for mxc in files:
        assert not await media_exists(synapse, admin, mxc), mxc
        status, _ = await volunteer.download(mxc)
        assert status == 404, (mxc, status)
    assert "media still on the server" not in w.logs.getvalue()
    assert "purge media deleted=4 not_deletable=0 not_participants=0" in w.logs.getvalue()
    assert_logs_clean(w, *c.said, chatter.user_id, *c.rooms, *files)
    assert await w.bot.stop() == 0
    assert query(data_dir(w), "SELECT purge_result FROM stats") == [("verified",)]
    assert query(data_dir(w), "SELECT count(*) FROM media_seen") == [(0,)]


async def test_a_file_whose_bytes_are_not_allowed_is_refused_and_nothing_reaches_the_other_side(
    synapse: Any, admin: Any, make_user: Any, make_client: Any, open_world: Any
) -> None:
    w: World = await open_world(privacy={"relay_media": True, "media": {"max_bytes": 100_000}})
    c = await start_conversation(w, make_user, make_client)
    chatter, volunteer = c.chatter.client, w.volunteers[0].client

    # A GIF labelled as a PNG: the label passes, the bytes do not.
    await chatter.send_image(c.chatter.room, GIF, filename="bilde.png")
    refused = await next_from_bot(w, chatter, c.chatter.room)
    assert refused.msgtype == "m.notice"
    assert "Dette kan ikke sendes videre her" in (refused.body or "")
    assert "JPEG, PNG, WebP" in (refused.body or "")

    # Too big, with no size declared: found out while downloading.
    big = png(4, 3, text="x" * 150_000)
    await volunteer.send_image(c.vroom, big, info={})
    too_big = await next_from_bot(w, volunteer, c.vroom)
    assert too_big.msgtype == "m.notice"
    assert "for stor" in (too_big.body or "")
    assert "0,095 MB" in (too_big.body or "")

    # Declared too big: refused before any download.
    await chatter.send_image(c.chatter.room, png(), info={"mimetype": "image/png", "size": 10**6})
    assert "for stor" in ((await next_from_bot(w, chatter, c.chatter.room)).body or "")

    # Nothing of it reached the other side: the next words are the next thing each sees.
    await chatter.send_text(c.chatter.room, "bare tekst")
    assert (await next_from_bot(w, volunteer, c.vroom)).body == "bare tekst"
    await volunteer.send_text(c.vroom, "fikk det")
    assert (await next_from_bot(w, chatter, c.chatter.room)).body == "fikk det"
    assert not [
        m
        for m in [*chatter.messages, *volunteer.messages]
        if m.msgtype == "m.image" and m.sender == w.bot_id
    ]


async def test_with_relaying_off_a_picture_is_refused_as_before(
    synapse: Any, admin: Any, make_user: Any, make_client: Any, open_world: Any
) -> None:
    w: World = await open_world()
    c = await start_conversation(w, make_user, make_client)
    chatter, volunteer = c.chatter.client, w.volunteers[0].client
    _, original = await chatter.send_image(c.chatter.room, png())
    refused = await next_from_bot(w, chatter, c.chatter.room)
    assert refused.msgtype == "m.notice"
    assert "blir ikke sendt videre her, bare tekst" in (refused.body or "")
    await chatter.send_text(c.chatter.room, "bare tekst")
    assert (await next_from_bot(w, volunteer, c.vroom)).body == "bare tekst"
    # Not relayed, but on the server all the same: the purge deletes the chatter's upload.
    await chatter.send_text(c.chatter.room, "!slutt")
    await wait_purged(w, synapse, admin, c.rooms, c.said)
    await wait_until(lambda: "purge finished" in w.logs.getvalue(), PURGE_TIMEOUT, "the purge")
    assert not await media_exists(synapse, admin, original)
