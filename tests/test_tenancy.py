"""Tenants in one Chatwoot account: two real users against the Chatwoot-compatible test server.

In the operator's shared account (the CHATWOOT_* settings) a user only ever reads, changes or messages
the contacts that this user created there, found by a tenant-scoped identifier; nothing is adopted by
email or phone, and a conflict names no other contact. With the user's own integration, adopting by
email is right (it is their account), and users who share one account still never cross each other's rows.
"""

import copy
import json
import re

import pytest
from sqlalchemy import delete, update

from crm.contacts import service as contacts
from crm.extensions import db
from crm.integrations import service
from crm.models import Contact, ContactLink, SyncRun
from crm.operations.messages import send_message
from crm.operations.sync import run_sync
from crm.providers.base import CRMError
from crm.providers.chatwoot import INBOX_NAME
from tests.conftest import link_of

SHARED_CONFLICT = "already exists in the platform's CRM"


@pytest.fixture
def shared(app, allow_local, chatwoot):
    """The operator's platform-wide Chatwoot is the test server; the users have no integration."""
    app.config.update(
        CHATWOOT_BASE_URL=chatwoot.url(),
        CHATWOOT_ACCOUNT_ID=str(chatwoot.account.id),
        CHATWOOT_API_KEY=chatwoot.admin_token,
    )
    return chatwoot


def own_integration(owner, server):
    values = {
        "name": "Support",
        "base_url": server.url(),
        "account_id": server.account.id,
        "api_key": server.admin_token,
        "auto_create_inboxes": True,
        "auto_create_bots": False,
        "sync_contacts": True,
    }
    return service.create_integration(owner, "CHATWOOT", values)


def sync_now(owner) -> SyncRun:
    run = SyncRun(user_id=owner.id, status="queued")
    db.session.add(run)
    db.session.commit()
    return run_sync(run.id)


class Fresh:
    """A contact as the database has it now, with its one sync link's state as attributes."""

    def __init__(self, contact: Contact):
        self._contact = contact
        link = link_of(contact)
        self.remote_id = int(link.remote_id) if link and link.remote_id else None
        self.sync_target = link.target if link else None
        self.sync_error = link.sync_error if link else None

    def __getattr__(self, name):
        return getattr(self._contact, name)


def fresh(contact) -> Fresh:
    db.session.expire_all()
    return Fresh(db.session.get(Contact, contact.id))


def point_link_at(contact, remote_id) -> None:
    """Corrupt a contact's stored remote id (a stale or forged one)."""
    db.session.execute(
        update(ContactLink).where(ContactLink.contact_id == contact.id).values(remote_id=str(remote_id))
    )


def row_state(contact: Contact) -> tuple:
    contact = fresh(contact)
    return (contact.name, contact.email, contact.phone, contact.remote_id, contact.sync_target, contact.sync_error)


def messages_in(server, conversation_id: int) -> list[str]:
    return [m["content"] for m in server.account.messages if m["conversation_id"] == conversation_id]


def conversation_of(server, remote_contact_id: int) -> dict:
    found = [c for c in server.account.conversations.values() if c["meta"]["sender"]["id"] == remote_contact_id]
    assert len(found) == 1
    return found[0]


def requests_touching(server, remote_id: int, since: int) -> list[str]:
    pattern = re.compile(rf"/contacts/{remote_id}(/|$)")
    return [f"{r['method']} {r['path']}" for r in server.requests[since:] if pattern.search(r["path"])]


def filters_sent(server, since: int) -> list[str]:
    """The attribute keys of every contact filter sent since `since`."""
    keys = []
    for r in server.requests[since:]:
        if r["method"] == "POST" and r["path"].endswith("/contacts/filter"):
            keys += [c["attribute_key"] for c in json.loads(r["body"])["payload"]]
    return keys


def assert_names_no_remote_contact(message: str) -> None:
    assert SHARED_CONFLICT in message
    assert not re.search(r"\d", message), message  # no "#123", no id of any kind


# --- the operator's shared account ---------------------------------------------------------------


def test_shared_sync_never_touches_or_reveals_another_users_contact(alice, bob, shared):
    theirs = contacts.create_contact(bob, {"name": "Bob's Ana", "email": "ana@example.com", "phone": "+4930111111"})
    assert sync_now(bob).created == 1
    theirs = fresh(theirs)
    bobs_remote = copy.deepcopy(shared.account.contacts[theirs.remote_id])
    bobs_row = row_state(theirs)
    since = len(shared.requests)

    mine = contacts.create_contact(alice, {"name": "Ana", "email": "ANA@example.com", "phone": "+4930111111"})
    run = sync_now(alice)

    assert (run.created, run.updated, run.failed) == (1, 0, 0)
    assert shared.account.contacts[theirs.remote_id] == bobs_remote  # not renamed, not re-identified
    assert row_state(theirs) == bobs_row
    mine = fresh(mine)
    assert mine.remote_id and mine.remote_id != theirs.remote_id  # her own, separate contact
    hers = shared.account.contacts[mine.remote_id]
    assert hers["name"] == "Ana" and hers["identifier"] not in (None, bobs_remote["identifier"])
    assert hers["email"] is None and hers["phone_number"] is None  # both are taken by a contact she did not create
    assert_names_no_remote_contact(mine.sync_error)
    # She never read bob's contact: looked up by her identifier only, never by email or phone.
    assert requests_touching(shared, theirs.remote_id, since) == []
    assert set(filters_sent(shared, since)) <= {"identifier"}


def test_shared_sync_never_adopts_a_contact_made_outside_the_platform(alice, shared):
    outsider = shared.add_remote_contact(
        shared.account, name="Ana (customer)", email="ana@example.com", phone_number="+4930222222"
    )
    before = copy.deepcopy(outsider)
    mine = contacts.create_contact(alice, {"name": "Ana", "email": "ana@example.com", "phone": "+4930222222"})
    since = len(shared.requests)

    run = sync_now(alice)

    assert (run.created, run.failed) == (1, 0)
    assert shared.account.contacts[outsider["id"]] == before
    mine = fresh(mine)
    assert mine.remote_id != outsider["id"]
    assert_names_no_remote_contact(mine.sync_error)
    assert requests_touching(shared, outsider["id"], since) == []
    assert set(filters_sent(shared, since)) <= {"identifier"}


def test_shared_send_message_posts_only_into_the_users_own_contact(alice, bob, shared):
    theirs = contacts.create_contact(bob, {"name": "Bob's Ana", "email": "ana@example.com"})
    bobs_message = send_message(bob, theirs.id, "Hi from Bob")
    inbox_id = shared.account.conversations[bobs_message.conversation_id]["inbox_id"]
    # A customer who wrote in to the platform's inbox before, with no identifier.
    outsider = shared.add_remote_contact(shared.account, name="Ben (customer)", email="ben@example.com")
    outsiders_conversation = shared.add_conversation(shared.account, inbox_id, outsider["id"])

    her_ana = contacts.create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    her_ben = contacts.create_contact(alice, {"name": "Ben", "email": "ben@example.com"})
    to_ana = send_message(alice, her_ana.id, "Hi Ana, from Alice")
    to_ben = send_message(alice, her_ben.id, "Hi Ben, from Alice")

    assert messages_in(shared, bobs_message.conversation_id) == ["Hi from Bob"]
    assert messages_in(shared, outsiders_conversation["id"]) == []
    assert shared.account.contacts[outsider["id"]]["identifier"] is None
    for sent, contact, text in ((to_ana, her_ana, "Hi Ana, from Alice"), (to_ben, her_ben, "Hi Ben, from Alice")):
        conversation = shared.account.conversations[sent.conversation_id]
        assert conversation["meta"]["sender"]["id"] == fresh(contact).remote_id
        assert shared.account.inboxes[conversation["inbox_id"]]["name"] == INBOX_NAME
        assert messages_in(shared, sent.conversation_id) == [text]
    assert len(shared.account.inboxes) == 1


def test_shared_stale_remote_id_never_leads_into_another_users_contact(alice, bob, shared):
    theirs = contacts.create_contact(bob, {"name": "Bob's Ana", "email": "ana@example.com"})
    bobs_message = send_message(bob, theirs.id, "Hi from Bob")
    theirs = fresh(theirs)
    bobs_remote = copy.deepcopy(shared.account.contacts[theirs.remote_id])
    mine = contacts.create_contact(alice, {"name": "Carla", "email": "carla@example.com"})
    assert sync_now(alice).created == 1
    her_remote_id = fresh(mine).remote_id
    # Her stored remote id now names bob's contact (merged or reassigned in Chatwoot), as unchanged.
    point_link_at(mine, theirs.remote_id)
    db.session.commit()

    sent = send_message(alice, mine.id, "Hi Carla")

    assert messages_in(shared, bobs_message.conversation_id) == ["Hi from Bob"]
    assert conversation_of(shared, her_remote_id)["id"] == sent.conversation_id
    assert fresh(mine).remote_id == her_remote_id  # found again by her identifier

    point_link_at(mine, theirs.remote_id)
    db.session.commit()
    contacts.update_contact(alice, mine.id, {"name": "Carla R.", "email": "carla@example.com"})
    assert sync_now(alice).failed == 0
    assert shared.account.contacts[theirs.remote_id] == bobs_remote  # not renamed
    assert shared.account.contacts[her_remote_id]["name"] == "Carla R."
    assert fresh(mine).remote_id == her_remote_id

    # Deleted in Chatwoot: made again as hers, never matched to anyone else's.
    del shared.account.contacts[her_remote_id]
    shared.account.index = {k: v for k, v in shared.account.index.items() if v != her_remote_id}
    again = send_message(alice, mine.id, "Still there?")
    recreated = fresh(mine).remote_id
    assert recreated not in (her_remote_id, theirs.remote_id)
    assert shared.account.conversations[again.conversation_id]["meta"]["sender"]["id"] == recreated


def test_shared_identifiers_are_tenant_scoped_opaque_and_stable(alice, bob, shared):
    mine = contacts.create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    theirs = contacts.create_contact(bob, {"name": "Ben", "email": "ben@example.com"})
    sync_now(alice)
    sync_now(bob)
    mine, theirs = fresh(mine), fresh(theirs)
    identifier = shared.account.contacts[mine.remote_id]["identifier"]
    assert identifier != shared.account.contacts[theirs.remote_id]["identifier"]
    assert mine.id not in identifier and "alice" not in identifier and f":{alice.id}:" not in identifier
    # Stable: with its local sync state lost, it is found again by the same identifier, not duplicated.
    db.session.execute(delete(ContactLink))
    db.session.commit()
    again = sync_now(alice)
    assert (again.created, again.updated, again.failed) == (0, 1, 0)
    assert fresh(mine).remote_id == mine.remote_id
    assert shared.account.contacts[mine.remote_id]["identifier"] == identifier
    # An unchanged contact costs no request at all.
    before = shared.count
    assert sync_now(alice).unchanged == 1
    assert shared.count == before


def test_shared_identifiers_survive_a_secret_key_change_with_fallbacks(app, alice, shared):
    mine = contacts.create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    sync_now(alice)
    remote_id = fresh(mine).remote_id
    old_identifier = shared.account.contacts[remote_id]["identifier"]
    app.config.update(SECRET_KEY="a new secret key", SECRET_KEY_FALLBACKS=[app.config["SECRET_KEY"]])
    contacts.update_contact(alice, mine.id, {"name": "Ana B.", "email": "ana@example.com"})
    run = sync_now(alice)
    assert (run.created, run.updated, run.failed) == (0, 1, 0)
    assert len(shared.account.contacts) == 1 and fresh(mine).sync_error is None
    assert shared.account.contacts[remote_id]["identifier"] not in (old_identifier, mine.id)  # re-keyed


def test_shared_contacts_synced_before_tenant_identifiers_are_taken_over(alice, shared):
    """Before tenant identifiers, the shared account held our contact id as the identifier: still hers."""
    mine = contacts.create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    legacy = shared.add_remote_contact(shared.account, name="Ana", email="ana@example.com", identifier=mine.id)
    run = sync_now(alice)
    assert (run.created, run.updated, run.failed) == (0, 1, 0)
    assert len(shared.account.contacts) == 1
    assert fresh(mine).remote_id == legacy["id"]
    assert shared.account.contacts[legacy["id"]]["identifier"] != mine.id
    assert fresh(mine).sync_error is None


# --- the users' own integrations on one account --------------------------------------------------


def test_own_integrations_on_one_account_keep_users_apart(alice, bob, allow_local, chatwoot):
    """Two users whose own integrations name the same Chatwoot account: adopting by email is right
    there (it is their account), but neither ever takes over, renames or messages the other's contact."""
    own_integration(bob, chatwoot)
    own_integration(alice, chatwoot)
    theirs = contacts.create_contact(bob, {"name": "Bob's Ana", "email": "ana@example.com"})
    bobs_message = send_message(bob, theirs.id, "Hi from Bob")
    theirs = fresh(theirs)
    bobs_remote = copy.deepcopy(chatwoot.account.contacts[theirs.remote_id])
    bobs_row = row_state(theirs)

    mine = contacts.create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    run = sync_now(alice)
    assert (run.created, run.updated, run.failed) == (0, 0, 1)
    mine = fresh(mine)
    assert mine.remote_id is None
    assert "belongs to another Chatwoot contact" in mine.sync_error
    assert theirs.id not in mine.sync_error and "bob" not in mine.sync_error.lower()
    with pytest.raises(CRMError, match="belongs to another Chatwoot contact"):
        send_message(alice, mine.id, "Hi Ana, from Alice")
    assert messages_in(chatwoot, bobs_message.conversation_id) == ["Hi from Bob"]
    assert chatwoot.account.contacts[theirs.remote_id] == bobs_remote
    assert row_state(theirs) == bobs_row

    # A contact made in her account outside the platform, with her contact's email: hers to adopt.
    outsider = chatwoot.add_remote_contact(chatwoot.account, name="Carl (customer)", email="carl@example.com")
    carl = contacts.create_contact(alice, {"name": "Carl", "email": "carl@example.com"})
    assert sync_now(alice).updated == 1
    assert fresh(carl).remote_id == outsider["id"]
    assert chatwoot.account.contacts[outsider["id"]]["identifier"] == carl.id


def test_shared_send_message_page_shows_nothing_of_another_user(app, alice, bob, shared, auth, client):
    theirs = contacts.create_contact(bob, {"name": "Bob's Ana", "email": "ana@example.com"})
    bobs_message = send_message(bob, theirs.id, "Hi from Bob")
    bobs_identifier = shared.account.contacts[fresh(theirs).remote_id]["identifier"]
    mine = contacts.create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    auth.login()
    page = client.get(f"/contacts/{mine.id}/message").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    answer = client.post(f"/contacts/{mine.id}/message", data={"text": "Hi Ana", "csrf_token": token})

    body = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "Sent" in body and "Not sent" not in body
    assert f"conversation {bobs_message.conversation_id}." not in body
    listing = client.get("/contacts").get_data(as_text=True)
    for page in (body, listing):
        assert "Bob's Ana" not in page and bobs_identifier not in page and theirs.id not in page
    assert "already exists in the platform&#39;s CRM" in listing  # her contact notes why its email was left out
    assert messages_in(shared, bobs_message.conversation_id) == ["Hi from Bob"]
