"""``LINK_TEAM_OWNERS``: a team's owners may link that team's channels; the owners come from Graph.

Through the whole stack: the channel message carries the team's ``aadGroupId``, the bot reads the group's owners from
the Graph stand-in (which, like Graph, wants ``GroupMember.Read.All`` in the token) and links or refuses.
"""

from __future__ import annotations

from typing import Any

import pytest

from cards.i18n import Lang, text
from tests.support.bot_stack import BOT_APP, CHANNEL_ID, TEAM_ID, BotStack, user

GROUP_ID = "3f1b2c3d-0000-4000-8000-00000000e001"
OWNER, MEMBER = user(2), user(3)


async def say_in_channel(stack: BotStack, sender: dict[str, str], text_: str) -> Any:
    mention = {"type": "mention", "text": "<at>Rufpool</at>", "mentioned": {"id": f"28:{BOT_APP.client_id}"}}
    activity = stack._activity(
        "message",
        sender,
        CHANNEL_ID,
        text=f"<at>Rufpool</at> {text_}",
        entities=[mention],
        channelData={
            "tenant": {"id": stack.settings.app_tenant_id},
            "team": {"id": TEAM_ID, "aadGroupId": GROUP_ID},
            "channel": {"id": CHANNEL_ID},
        },
    )
    assert (await stack.post_activity(activity)).status < 300
    return stack.connector.activities(CHANNEL_ID)[-1].current


@pytest.mark.parametrize(("owners_may", "sender", "linked"), [
    (True, OWNER, True), (True, MEMBER, False), (False, OWNER, False),
], ids=["owner", "member", "owner-without-the-setting"])  # fmt: skip
async def test_team_owners_link_their_own_teams_channel_when_allowed(
    bot_stack: BotStack, monkeypatch: pytest.MonkeyPatch, owners_may: bool, sender: dict[str, str], linked: bool
) -> None:
    monkeypatch.setattr(bot_stack.settings, "link_team_owners", owners_may)
    bot_stack.graph.set_group_owners(GROUP_ID, [OWNER["aadObjectId"]])
    await bot_stack.install()

    answer = await say_in_channel(bot_stack, sender, "verbinden zentrale")

    link = await bot_stack.services.store.links.link_for_line("zentrale")
    assert (link is not None) is linked
    if linked:
        assert link is not None and link.linked_by == OWNER["aadObjectId"]
    else:
        assert answer["text"] == text(Lang.DE, "link_not_allowed")
    asked = [r for r in bot_stack.graph.requests if r.path.endswith(f"/groups/{GROUP_ID}/owners")]
    assert bool(asked) is owners_may
