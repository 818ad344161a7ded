"""Integration business rules. Plain functions: they take the owner, never read `request`.

Every function that loads an integration names its owner, so no code path can reach another
user's row. Sensitive values are sealed before a row is written and opened only by
`live_configuration`, on the way out to the CRM.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from blinker import Namespace
from flask import current_app, has_request_context
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm import audit, sealing
from crm.analytics import recorder as analytics
from crm.crypto import CredentialUnreadable, Keyring, is_sealed
from crm.extensions import db
from crm.models import Integration, User, find_owned, utcnow
from crm.net import BlockedDestination, DNSFailure, GuardedClient, InvalidURL, OutboundError
from crm.providers import get_provider
from crm.providers.base import ConnectionResult, CRMError, Field, Provider, is_blank, network_message, origin
from crm.providers.registry import UnknownProvider

INTEGRATION_TYPE = "CRM"
HINT_MIN_LENGTH = 12  # shorter secrets show no last characters at all
SEALED_ELSEWHERE = "This looks like an encrypted value copied from elsewhere: paste the original credential."


class IntegrationNotFound(LookupError):
    """No integration with this id belongs to this owner (whether or not it exists)."""


class ValidationFailed(ValueError):
    def __init__(self, fields: dict[str, list[str]], message: str = "Please correct the highlighted fields."):
        super().__init__(message)
        self.message = message
        self.fields = fields


def keyring() -> Keyring:
    return current_app.extensions["crm_keyring"]


def outbound_client() -> GuardedClient:
    return current_app.extensions["crm_http"]


WEB_DEADLINE_SECONDS = 15.0


def web_deadline() -> float | None:
    """The deadline of CRM work a web request waits for (a save's provisioning, a message): at most
    15 s (CRM_WEB_DEADLINE), retries included. Jobs and the CLI have none of their own."""
    if not has_request_context():
        return None
    seconds = float(current_app.config.get("CRM_WEB_DEADLINE", WEB_DEADLINE_SECONDS))
    return time.monotonic() + min(seconds, WEB_DEADLINE_SECONDS)


# --- reading -----------------------------------------------------------------------------------


def list_integrations(owner: User) -> list[Integration]:
    query = select(Integration).where(Integration.user_id == owner.id).order_by(Integration.created_at)
    return list(db.session.scalars(query))


def get_integration(owner: User, integration_id: object) -> Integration:
    integration = find_owned(Integration, owner, integration_id)
    if integration is None:
        raise IntegrationNotFound(integration_id)
    return integration


def owner_of(integration_id: object) -> User:
    """For operator commands only (`flask crm test ID`): who owns this integration."""
    try:
        key = str(uuid.UUID(str(integration_id)))
    except ValueError:
        raise IntegrationNotFound(integration_id) from None
    owner = db.session.scalars(select(User).join(Integration).where(Integration.id == key)).first()
    if owner is None:
        raise IntegrationNotFound(integration_id)
    return owner


def provider_of(integration: Integration) -> type[Provider]:
    return get_provider(integration.provider)


# --- the primary integration -------------------------------------------------------------------


def can_be_primary(integration: Integration) -> bool:
    """Only an active integration the platform can act in may be the one it acts through."""
    return integration.is_active and get_provider(integration.provider).can_operate


def primary_of(integrations: list[Integration]) -> Integration | None:
    """The integration the platform acts through: the one marked primary if it can be, else the
    oldest that can. The banner, the cards, the API and crm_for all ask this one question."""
    eligible = [i for i in integrations if can_be_primary(i)]
    eligible.sort(key=lambda i: (not i.is_primary, i.created_at or utcnow()))  # a new row has no date yet
    return eligible[0] if eligible else None


def _settle_primary(integrations: list[Integration]) -> Integration | None:
    """Keep the stored flag on exactly the integration primary_of names (or on none)."""
    primary = primary_of(integrations)
    for integration in integrations:
        integration.is_primary = integration is primary
    return primary


# --- sealing -----------------------------------------------------------------------------------


def _seal(owner_id: int, integration_id: str, spec: Field, value: Any) -> tuple[Any, dict[str, str]]:
    try:
        sealed = sealing.seal(keyring(), owner_id, integration_id, spec.name, value)
    except CredentialUnreadable:
        raise ValidationFailed({spec.name: [SEALED_ELSEWHERE]}) from None
    hints = {
        binding_name: plaintext[-4:]
        for binding_name, plaintext in sealing.items(spec.name, value)
        if not is_sealed(plaintext) and len(plaintext) >= HINT_MIN_LENGTH
    }
    return sealed, hints


def _apply(integration: Integration, provider: type[Provider], values: Mapping[str, Any]) -> None:
    """Write validated values to the row, sealing every sensitive one. Blank secrets keep theirs."""
    # Secrets, and what the OAuth flow filled in (tokens, expiry, instance URL), are kept unless replaced.
    kept = {spec.name for spec in provider.sensitive_fields()} | {spec.name for spec in provider.token_fields()}
    configuration = {key: value for key, value in (integration.configuration or {}).items() if key in kept}
    hints = dict(integration.secret_hints or {})
    for spec in provider.config_fields:
        if spec.name not in values:
            if not spec.sensitive and not spec.oauth_token:
                configuration.pop(spec.name, None)
            continue
        if spec.sensitive:
            configuration[spec.name], new_hints = _seal(integration.user_id, integration.id, spec, values[spec.name])
            hints = {k: v for k, v in hints.items() if k != spec.name and not k.startswith(f"{spec.name}.")}
            hints.update(new_hints)
        else:
            configuration[spec.name] = values[spec.name]
    integration.name = values["name"]
    integration.configuration = configuration
    integration.secret_hints = hints


def _validated(
    provider: type[Provider],
    raw: Mapping[str, Any],
    stored: Mapping[str, Any] | None = None,
    check_destinations: bool = True,
) -> dict[str, Any]:
    result = provider.validate(raw, stored_secrets=stored)
    if check_destinations and not result.errors:
        for spec in provider.config_fields:
            if spec.type == "url" and spec.name in result.values:
                problem = destination_problem(provider, result.values[spec.name])
                if problem:
                    result.add_error(spec.name, problem)
    if result.errors:
        raise ValidationFailed(result.errors)
    return result.values


def destination_problem(provider: type[Provider], url: str) -> str | None:
    """Refuse at save time what the outbound client would refuse anyway. An unknown host name is
    let through: it may be a typo, but it may also be a server this machine cannot resolve yet."""
    try:
        outbound_client().check_destination(url)
    except (InvalidURL, BlockedDestination) as exc:
        return network_message(exc.outcome, provider.name, exc.detail)
    except DNSFailure:
        return None
    return None


def _origins(provider: type[Provider], values: Mapping[str, Any]) -> dict[str, Any]:
    return {spec.name: origin(values.get(spec.name)) for spec in provider.config_fields if spec.type == "url"}


def secrets_must_be_reentered(provider: type[Provider], stored: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """A stored secret may only go to the host it was saved for: a new host needs it typed again."""
    before, after = _origins(provider, stored), _origins(provider, new)
    return any(before[name] is not None and before[name] != after[name] for name in before)


def _require_reentry(provider: type[Provider], raw: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    missing = {
        spec.name: [f"The server address changed: enter the {spec.label} again."]
        for spec in provider.sensitive_fields()
        if spec.name in stored and is_blank(raw.get(spec.name)) and spec.applies(raw) and not spec.oauth_token
    }
    if any(spec.oauth_token and spec.name in stored for spec in provider.sensitive_fields()):
        # OAuth tokens are never typed: a new sign-in address means connecting again.
        message = f"The sign-in address changed: connect {provider.name} again instead of editing it."
        raise ValidationFailed({"access_token": [message]}, message)
    if missing:
        raise ValidationFailed(missing, "The server address changed: enter the credentials again.")


def _merged_with_stored(provider: type[Provider], integration: Integration, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Fields left out keep their stored values; sensitive ones stay sealed unless re-entered."""
    known = {spec.name for spec in provider.fields()}
    sensitive = {spec.name for spec in provider.sensitive_fields()}
    merged = {key: value for key, value in (integration.configuration or {}).items() if key in known - sensitive}
    merged["name"] = integration.name
    merged.update({key: value for key, value in raw.items() if key in known})
    return merged


# --- writing -----------------------------------------------------------------------------------


def available_provider(provider_id: object) -> type[Provider]:
    try:
        provider = get_provider(provider_id)
    except UnknownProvider:
        raise ValidationFailed({"provider": ["Choose one of the listed providers."]}) from None
    if not provider.is_available():
        raise ValidationFailed({"provider": [f"{provider.name} is coming soon and cannot be connected yet."]})
    return provider


CREATION_KEY_MAX = 64


class BadCreationKey(ValueError):
    """An Idempotency-Key (or form id) that is empty or longer than CREATION_KEY_MAX characters."""


def created_with(owner: User, creation_key: str) -> Integration | None:
    query = select(Integration).where(Integration.user_id == owner.id, Integration.creation_key == creation_key)
    return db.session.scalars(query).first()


def create_integration(
    owner: User,
    provider_id: str,
    raw: Mapping[str, Any],
    *,
    creation_key: str | None = None,
    tests: Mapping[str, Any] | None = None,
) -> Integration:
    return create_once(owner, provider_id, raw, creation_key=creation_key, tests=tests)[0]


def create_once(
    owner: User,
    provider_id: str,
    raw: Mapping[str, Any],
    *,
    creation_key: str | None = None,
    tests: Mapping[str, Any] | None = None,
) -> tuple[Integration, bool]:
    """Create an integration, or answer the one this `creation_key` already created: (integration,
    created). A double click or a replayed request then makes one integration, not two.

    `tests` maps configuration fingerprints to test results the caller saw (see `fingerprint`):
    one for exactly these values is recorded on the new integration."""
    if creation_key is not None:
        if not creation_key or len(creation_key) > CREATION_KEY_MAX:
            raise BadCreationKey(creation_key)
        existing = created_with(owner, creation_key)
        if existing is not None:
            return existing, False
    provider = available_provider(provider_id)
    from crm.providers import oauth  # it calls back into this module

    if oauth.is_oauth(provider) and not hasattr(provider, "uses_oauth"):  # tokens come from crm.oauth, never typed
        message = f"{provider.name} connects with OAuth: use Connect with {provider.name}."
        raise ValidationFailed({"provider": [message]})
    values = _validated(provider, raw)
    if oauth.uses_oauth(provider, values):  # e.g. Custom CRM with the Authorization code grant
        message = f"With the Authorization code grant, use Connect: you sign in to {provider.name} and allow access."
        raise ValidationFailed({"grant": [message]}, message)
    integration = Integration(
        id=str(uuid.uuid4()),
        user_id=owner.id,
        type=INTEGRATION_TYPE,
        provider=provider.id,
        is_active=True,
        creation_key=creation_key,
    )
    tested = (tests or {}).get(fingerprint(provider, values))
    _apply(integration, provider, values)
    _record_test(integration, tested)
    existing = list_integrations(owner)
    db.session.add(integration)
    _settle_primary([*existing, integration])
    audit.record(owner.id, "create", integration)
    try:
        db.session.commit()
    except IntegrityError:
        # The same key committed by a concurrent request (the second click of a double click).
        db.session.rollback()
        if creation_key is None or (winner := created_with(owner, creation_key)) is None:
            raise
        return winner, False
    _provision(owner, integration)
    return integration, True


# Sent after a save that may need work in the CRM (created, configuration changed, activated). The
# operations layer listens (crm.operations.provisioning); this module never calls up into it.
integration_saved = Namespace().signal("integration-saved")


def _provision(owner: User, integration: Integration) -> None:
    integration_saved.send(current_app._get_current_object(), owner=owner, integration=integration)


def update_integration(
    owner: User,
    integration_id: object,
    *,
    name: str | None = None,
    is_active: bool | None = None,
    raw: Mapping[str, Any] | None = None,
    tests: Mapping[str, Any] | None = None,
) -> Integration:
    integration = get_integration(owner, integration_id)
    provider = provider_of(integration)
    stored = integration.configuration or {}
    if raw is not None or name is not None:
        merged = _merged_with_stored(provider, integration, raw or {})
        if name is not None:
            merged["name"] = name
        candidate = _validated(provider, merged, stored)
        if secrets_must_be_reentered(provider, stored, candidate):
            _require_reentry(provider, merged, stored)
        tested = (tests or {}).get(fingerprint(provider, candidate, integration))
        before_name, before = integration.name, dict(stored)
        _apply(integration, provider, candidate)
        changed = _changed_labels(provider, before_name, before, integration)
        if tested is not None:
            _record_test(integration, tested)
        elif any(label != NAME_LABEL for label in changed):
            # A changed host, account or secret has not been tested yet; a new name keeps its test.
            integration.last_test_outcome = integration.last_test_message = integration.last_tested_at = None
        audit.record(owner.id, "update", integration, detail=", ".join(changed) or "nothing changed")
    activated = is_active is not None and bool(is_active) and not integration.is_active
    if is_active is not None and bool(is_active) != integration.is_active:
        integration.is_active = bool(is_active)
        audit.record(owner.id, "activate" if integration.is_active else "deactivate", integration)
        _settle_primary(list_integrations(owner))
    integration.updated_at = utcnow()
    db.session.commit()
    if raw is not None or activated:
        _provision(owner, integration)
    return integration


class CannotBePrimary(ValueError):
    """The integration is inactive, or the platform cannot act in its provider."""


def make_primary(owner: User, integration_id: object) -> Integration:
    chosen = get_integration(owner, integration_id)
    if not can_be_primary(chosen):
        reason = "is inactive" if not chosen.is_active else "is a CRM the platform cannot act in yet"
        raise CannotBePrimary(f"{chosen.name} cannot be primary: it {reason}.")
    for integration in list_integrations(owner):
        integration.is_primary = integration.id == chosen.id
    audit.record(owner.id, "make_primary", chosen)
    db.session.commit()
    return chosen


def delete_integration(owner: User, integration_id: object) -> Integration | None:
    """Delete it; answers the primary integration afterwards (None when no integration can be)."""
    integration = get_integration(owner, integration_id)
    from crm.oauth.service import revoke  # OAuth tokens are revoked at the provider first (never blocking)

    revoke(owner, integration)
    audit.record(owner.id, "delete", integration)
    db.session.delete(integration)
    primary = _settle_primary([i for i in list_integrations(owner) if i.id != integration.id])
    db.session.commit()
    return primary


def primary_integration(owner: User) -> Integration | None:
    return primary_of(list_integrations(owner))


# --- test results bound to a configuration -------------------------------------------------------

NAME_LABEL = "name"


def fingerprint(provider: type[Provider], values: Mapping[str, Any], integration: Integration | None = None) -> str:
    """An HMAC of exactly the configuration a test ran against (the name aside): typed secrets in
    clear, kept ones as their sealed form. Saving the same values finds the test; any other host,
    account or secret does not. Keyed with SECRET_KEY, so it reveals nothing of the secret."""
    stored = (integration.configuration or {}) if integration is not None else {}
    sensitive = {spec.name for spec in provider.sensitive_fields()}
    config = {key: value for key, value in stored.items() if key not in sensitive}
    config.update({key: value for key, value in values.items() if key != "name"})
    for name in sensitive:
        if name not in values and name in stored:
            config[name] = ["kept", stored[name]]
    message = json.dumps(
        [provider.id, integration.id if integration is not None else None, config], sort_keys=True, default=str
    )
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _record_test(integration: Integration, tested: Mapping[str, Any] | None) -> None:
    if tested is None:
        return
    integration.last_test_outcome = tested["outcome"]
    integration.last_test_message = tested["message"]
    integration.last_tested_at = utcnow()


def _changed_labels(provider: type[Provider], before_name: str, before: Mapping[str, Any], after: Integration):
    """What an update changed, by label (never a value): for the history."""
    changed = [NAME_LABEL] if before_name != after.name else []
    now = after.configuration or {}
    for spec in provider.config_fields:
        if before.get(spec.name) != now.get(spec.name):
            changed.append(spec.label)
    return changed


def record_test_result(owner: User, integration_id: object, outcome: str, message: str) -> Integration:
    integration = get_integration(owner, integration_id)
    integration.last_test_outcome = outcome
    integration.last_test_message = message
    integration.last_tested_at = utcnow()
    db.session.commit()
    return integration


# --- connection tests ----------------------------------------------------------------------------


def test_connection(
    owner: User,
    provider_id: str | None,
    raw: Mapping[str, Any],
    integration_id: object | None = None,
) -> ConnectionResult:
    """Test a configuration without saving it.

    With `integration_id`, blank secrets are taken from that saved integration (never across a
    change of host), and a test of the saved configuration as it is records its outcome."""
    return test_and_fingerprint(owner, provider_id, raw, integration_id)[0]


def test_and_fingerprint(
    owner: User,
    provider_id: str | None,
    raw: Mapping[str, Any],
    integration_id: object | None = None,
) -> tuple[ConnectionResult, str]:
    """test_connection, and the fingerprint of what was tested (for a save that follows it)."""
    if integration_id is None:
        provider = available_provider(provider_id)
        # Destinations are left to the test itself, which answers blocked_destination or invalid_url.
        config = _validated(provider, {"name": provider.name, **raw}, check_destinations=False)
        result = provider.run_test(with_endpoints(provider, config), outbound_client())
        audit.record(owner.id, "test", outcome=result.outcome, provider=provider.id, detail="unsaved values")
        db.session.commit()
        return result, fingerprint(provider, config)

    integration = get_integration(owner, integration_id)
    provider = provider_of(integration)
    stored = integration.configuration or {}
    merged = _merged_with_stored(provider, integration, raw)
    candidate = _validated(provider, merged, stored, check_destinations=False)
    if secrets_must_be_reentered(provider, stored, candidate):
        _require_reentry(provider, merged, stored)
    try:
        live = fresh_configuration(owner, integration, purpose="connection test")
    except (CRMError, OutboundError):  # a refused or failed OAuth refresh: the test below says what is wrong
        live = live_configuration(owner, integration, purpose="connection test")
    config = {**live, **candidate}
    started = time.perf_counter()
    result = provider.run_test(with_endpoints(provider, config), outbound_client())
    elapsed_ms = (time.perf_counter() - started) * 1000
    analytics.record("test", integration.id, owner.id, result.outcome, elapsed_ms, provider=provider.id)
    audit.record(owner.id, "test", integration, result.outcome)
    unchanged = all(stored.get(key) == value for key, value in candidate.items() if key != "name") and not any(
        spec.name in candidate for spec in provider.sensitive_fields()
    )
    if unchanged:
        record_test_result(owner, integration.id, result.outcome, result.message)
    db.session.commit()
    return result, fingerprint(provider, candidate, integration)


# --- the outbound path -------------------------------------------------------------------------


def with_endpoints(provider: type[Provider], config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration with the operator's addresses for this provider (see Provider.endpoints)."""
    return {**config, **provider.endpoints(current_app.config, config)}


def fresh_configuration(owner: User, integration: Integration, purpose: str = "outbound call") -> dict[str, Any]:
    """live_configuration, with an OAuth access token refreshed first when it is due (one refresh
    across threads and processes). Raises crm.providers.oauth.NeedsReconnect when the provider
    refused the refresh token: operations stop with "Reconnect ... on Dashboard → Integrations"."""
    if "oauth" in provider_of(integration).features:
        from crm.providers import oauth  # it calls back into this module

        if integration.user_id != owner.id:  # a team member's use: refreshed as its owner's token
            live_configuration(owner, integration, purpose)  # checks the share, records the use
            return oauth.ensure_fresh(integration.owner, integration, purpose)
        return oauth.ensure_fresh(owner, integration, purpose)
    return live_configuration(owner, integration, purpose)


def live_configuration(owner: User, integration: Integration, purpose: str = "outbound call") -> dict[str, Any]:
    """The configuration with every secret opened, for a call to the CRM and nothing else.

    Raises CredentialUnreadable when a stored secret was tampered with, moved, or sealed under a
    key that is no longer configured.
    """
    if integration.user_id != owner.id and not _shared_with(owner, integration):
        raise IntegrationNotFound(integration.id)
    provider = provider_of(integration)
    ring = keyring()
    live = dict(integration.configuration or {})
    for spec in provider.sensitive_fields():
        if spec.name not in live:
            continue
        # Sealed under its owner's id, whoever uses it.
        live[spec.name] = sealing.open_value(ring, integration.user_id, integration.id, spec.name, live[spec.name])
    live["name"] = integration.name
    live = with_endpoints(provider, live)
    if integration.user_id == owner.id:
        audit.record(owner.id, "secret_used", integration, detail=purpose)
    else:
        from crm.teams.service import record_use

        record_use(owner, integration, purpose)
    db.session.commit()
    return live


def _shared_with(user: User, integration: Integration) -> bool:
    """A team member may have the secret opened for an operation through it (never for display:
    nothing that presents an integration calls live_configuration)."""
    from crm.teams.service import usable_shared  # teams build on this module

    return usable_shared(user, integration.id) is not None


# --- presenting --------------------------------------------------------------------------------


def secret_summary(integration: Integration, spec: Field) -> dict[str, Any] | None:
    """What may be shown of a stored secret: whether it is set, and the last characters of a long one."""
    stored = (integration.configuration or {}).get(spec.name)
    if stored is None:
        return None
    hints = integration.secret_hints or {}

    def summary(binding_name: str) -> dict[str, Any]:
        info: dict[str, Any] = {"configured": True}
        if binding_name in hints:
            info["last4"] = hints[binding_name]
        return info

    return sealing.walk(spec.name, stored, lambda binding_name, _token: summary(binding_name))


def secret_hints(integration: Integration) -> dict[str, str]:
    """For an edit form: what to say beside each stored secret's empty input."""
    provider = provider_of(integration)
    hints = {}
    for spec in provider.sensitive_fields():
        summary = secret_summary(integration, spec)
        if summary is None:
            continue
        if spec.parts:  # one input per key: one hint per key
            for key, info in summary.items():
                ending = f", ending in {info['last4']}" if "last4" in info else ""
                hints[f"{spec.name}.{key}"] = f"Saved{ending}. Leave blank to keep it."
        elif spec.type == "json":
            parts = [f"{key} ending in {info['last4']}" if "last4" in info else key for key, info in summary.items()]
            hints[spec.name] = f"Saved: {', '.join(parts)}. Leave blank to keep them."
        elif "last4" in summary:
            hints[spec.name] = f"Saved, ending in {summary['last4']}. Leave blank to keep it."
        else:
            hints[spec.name] = "Saved. Leave blank to keep it."
    return hints


ENVIRONMENT_CHATWOOT = ("CHATWOOT_BASE_URL", "CHATWOOT_ACCOUNT_ID", "CHATWOOT_API_KEY")


def environment_chatwoot_configured(config: Mapping[str, Any]) -> bool:
    """The operator's platform-wide Chatwoot counts only when all three settings are present."""
    return all(str(config.get(name) or "").strip() for name in ENVIRONMENT_CHATWOOT)
