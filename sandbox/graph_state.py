"""The Graph stand-in's state: mailboxes, contacts and directory users, subscriptions, delta sync states, teams and
group owners, the Python control API that changes them, and the change notifications those changes send."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any

from sandbox.graph_directory import DIRECTORY_KEY, PeopleDirectory, contacts_key
from sandbox.graph_model import (
    Attachment,
    GraphError,
    Mailbox,
    Message,
    SyncState,
    apply_message_changes,
    authentication_results,
    parse_flag,
    utcnow,
)
from sandbox.graph_subscriptions import (
    LIFECYCLE_EVENTS,
    Notifier,
    Subscription,
    change_notification,
    lifecycle_notification,
)

log = logging.getLogger("sandbox.graph")  # the name it logged under before the split

ChannelMessages = Callable[[str], list[dict[str, Any]]]
"""A team's channel messages by channel id, in Graph's ``chatMessage`` shape."""


class GraphState:
    """What a :class:`~sandbox.graph.GraphStandIn` holds, changed by its Graph routes and by tests through this API."""

    def __init__(
        self, notifier: Notifier, *, tenant_id: str, max_subscription_minutes: int, expiry_check_interval_s: float
    ) -> None:
        self.tenant_id = tenant_id
        self.max_subscription_minutes = max_subscription_minutes
        self._expiry_check_interval_s = expiry_check_interval_s
        self.notifier = notifier
        self._mailboxes: dict[str, Mailbox] = {}
        self.group_owners: dict[str, list[str]] = {}
        self.teams: dict[str, ChannelMessages] = {}
        self.subscription_by_id: dict[str, Subscription] = {}
        self.sync_states: dict[str, SyncState] = {}
        self.people = PeopleDirectory()
        self._tasks: set[asyncio.Task[Any]] = set()  # notification deliveries in flight
        self._loop: asyncio.AbstractEventLoop | None = None

    async def idle(self) -> None:
        """Wait until every notification delivery started so far has finished (for tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run in the background on the stand-in's loop, also when called from another thread."""
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("Graph stand-in is not started")

        def create() -> None:
            task = loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            create()
        else:
            loop.call_soon_threadsafe(create)

    async def _expire_subscriptions_forever(self) -> None:
        while True:
            await asyncio.sleep(self._expiry_check_interval_s)
            self._drop_expired_subscriptions()

    def _drop_expired_subscriptions(self) -> None:
        now = utcnow()
        for sub_id in [s.id for s in self.subscription_by_id.values() if s.expiration <= now]:
            log.info("subscription %s expired", sub_id)
            del self.subscription_by_id[sub_id]

    def add_mailbox(self, address: str, display_name: str | None = None) -> Mailbox:
        existing = self.find_mailbox(address)
        if existing is not None:
            return existing
        mailbox = Mailbox(address=address, display_name=display_name or address.split("@")[0])
        self._mailboxes[mailbox.user_id] = mailbox
        return mailbox

    @property
    def mailboxes(self) -> list[Mailbox]:
        return list(self._mailboxes.values())

    def mailbox(self, key: str) -> Mailbox:
        found = self.find_mailbox(key)
        if found is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
        return found

    def deliver_mail(
        self,
        mailbox: str,
        subject: str,
        sender: str,
        body: str,
        *,
        body_type: str = "text",
        sender_name: str | None = None,
        attachments: Sequence[Attachment] = (),
        received: datetime | None = None,
        authentication: str | None = "pass",
        headers: Sequence[tuple[str, str]] = (),
        message_class: str = "IPM.Note",
    ) -> Message:
        """A new mail arrives in the Inbox; subscribers get a `created` notification.

        Like Exchange Online, the stand-in stamps its sender-authentication verdict (``authentication``: pass,
        fail, none) on top of the mail; ``headers`` are the sender's own headers below it (forged ones included).
        ``authentication=None`` stamps nothing, as for mail sent inside the organisation.
        """
        if body_type not in ("text", "html"):
            raise GraphError(400, "ErrorInvalidRequest", f"bodyType must be text or html, not '{body_type}'.")
        stamp = [authentication_results(sender, authentication)] if authentication is not None else []
        stamped = [*stamp, *((str(n), str(v)) for n, v in headers)]
        box = self.mailbox(mailbox)
        message = box.add(
            Message(
                subject=subject,
                sender_name=sender_name or sender,
                sender_address=sender,
                body=body,
                body_type=body_type,
                received=received or utcnow(),
                recipient_address=box.address,
                folder_id=box.inbox_id,
                attachments=list(attachments),
                headers=stamped,
                message_class=message_class,
            )
        )
        self.notify(box, message, "created")
        return message

    def upsert_contact(self, mailbox: str, contact: dict[str, Any]) -> dict[str, Any]:
        """Add or change an Outlook contact of ``mailbox`` (Graph contact properties; ``id`` picks the contact)."""
        return self.people.collection(contacts_key(self.mailbox(mailbox).user_id)).upsert(contact)

    def remove_contact(self, mailbox: str, contact_id: str) -> None:
        self.people.collection(contacts_key(self.mailbox(mailbox).user_id)).remove(contact_id)

    def upsert_user(self, user: dict[str, Any]) -> dict[str, Any]:
        """Add or change a user of the directory (Graph user properties)."""
        return self.people.collection(DIRECTORY_KEY).upsert(user)

    def remove_user(self, user_id: str) -> None:
        self.people.collection(DIRECTORY_KEY).remove(user_id)

    def set_flag(self, mailbox: str, message_id: str, flag: dict[str, Any]) -> Message:
        """A user sets or clears the flag in Outlook: same change and notification as a Graph PATCH."""
        return self._user_change(mailbox, message_id, {"flag": parse_flag(flag)})

    def set_read(self, mailbox: str, message_id: str, is_read: bool) -> Message:
        """A user opens the mail in Outlook, or marks it read or unread."""
        return self._user_change(mailbox, message_id, {"isRead": is_read})

    def _user_change(self, mailbox: str, message_id: str, changes: dict[str, Any]) -> Message:
        box = self.mailbox(mailbox)
        message = box.message(message_id)
        apply_message_changes(message, changes, box.next_sequence())
        self.notify(box, message, "updated")
        return message

    def delete_message(self, mailbox: str, message_id: str) -> None:
        box = self.mailbox(mailbox)
        message = box.message(message_id)
        box.delete(message_id)
        self.notify(box, message, "deleted")

    def fire_lifecycle(
        self, event: str, *, subscription_id: str | None = None, mailbox: str | None = None
    ) -> list[str]:
        """Post a lifecycle event to the subscriptions' lifecycleNotificationUrl; returns the subscription ids."""
        if event not in LIFECYCLE_EVENTS:
            raise GraphError(400, "InvalidRequest", f"Unknown lifecycle event '{event}'.")
        if subscription_id is not None:
            targets = [self.subscription(subscription_id)]
        elif mailbox is not None:
            user_id = self.mailbox(mailbox).user_id
            targets = [s for s in self.subscription_by_id.values() if s.mailbox_id == user_id]
        else:
            targets = list(self.subscription_by_id.values())
        for sub in targets:
            if sub.lifecycle_url:
                payload = {"value": [lifecycle_notification(sub, event, self.tenant_id)]}
                self._spawn(self.notifier.deliver(sub.lifecycle_url, payload))
            if event == "subscriptionRemoved":
                del self.subscription_by_id[sub.id]
        return [sub.id for sub in targets]

    @property
    def deliveries(self) -> list[Any]:
        """Notifications and lifecycle events sent (url, payload, attempts, status, delivered)."""
        return list(self.notifier.deliveries)

    def subscriptions(self) -> list[dict[str, Any]]:
        self._drop_expired_subscriptions()
        return [s.to_graph() for s in self.subscription_by_id.values()]

    def expire_delta_tokens(self) -> None:
        """Forget all sync states: the next deltaLink call gets 410 and the client must resync."""
        self.sync_states.clear()
        self.people.expire_tokens()

    def reset(self) -> None:
        """Empty every mailbox and forget subscriptions, tokens and deliveries."""
        self._mailboxes = {
            box.user_id: Mailbox(address=box.address, display_name=box.display_name, user_id=box.user_id)
            for box in self._mailboxes.values()
        }
        self.subscription_by_id.clear()
        self.sync_states.clear()
        self.people.reset()
        self.notifier.deliveries.clear()

    def find_mailbox(self, key: str) -> Mailbox | None:
        lowered = key.lower()
        for box in self._mailboxes.values():
            if lowered in (box.user_id, box.address.lower()):
                return box
        return None

    def subscription(self, sub_id: str) -> Subscription:
        self._drop_expired_subscriptions()
        sub = self.subscription_by_id.get(sub_id)
        if sub is None:
            raise GraphError(404, "ResourceNotFound", "The object was not found.")
        return sub

    def notify(self, box: Mailbox, message: Message, change: str) -> None:
        if self._loop is None:
            return
        self._drop_expired_subscriptions()
        for sub in self.subscription_by_id.values():
            if sub.mailbox_id == box.user_id and change in sub.change_types:
                payload = {"value": [change_notification(sub, box, message, change, self.tenant_id)]}
                self._spawn(self.notifier.deliver(sub.notification_url, payload))

    def add_team(self, group_id: str, channel_messages: ChannelMessages) -> None:
        """A team the app is installed in with resource-specific consent (``ChannelMessage.Read.Group``): Graph
        lists its channels' messages from ``channel_messages(channel_id)`` (the connector stand-in's posts)."""
        self.teams[group_id.lower()] = channel_messages

    def set_group_owners(self, group_id: str, owner_ids: Sequence[str]) -> None:
        """A Microsoft 365 group (a team's aadGroupId) and the object ids of its owners."""
        self.group_owners[group_id.lower()] = list(owner_ids)
