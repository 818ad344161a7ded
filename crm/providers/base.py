"""What every provider declares: its field schema, its metadata, and the validation derived from it.

The form, the JSON API and the CLI are all built from `Provider.fields()`, so a new provider is one
class in one file and touches no template and no route.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from crm.net import GuardedClient, OutboundError, Response

FIELD_TYPES = ("text", "url", "password", "number", "checkbox", "select", "textarea", "json")
TRUE_WORDS = {"1", "true", "yes", "on", "y"}
FALSE_WORDS = {"0", "false", "no", "off", "n", ""}
MAX_TEXT = 2048
# Category Cc (NUL, CR, LF, ESC, DEL...) forges log lines, HTTP headers and terminal output, and
# PostgreSQL cannot store NUL; bidi overrides, isolates and LRM/RLM reorder text on screen unseen.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
BIDI_CONTROLS = re.compile(r"[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
CONTROL_NAMES = {"\x00": "a NUL byte", "\t": "a tab", "\n": "a line break", "\r": "a line break", "\x1b": "an escape"}


@functools.cache  # a handful of field names, asked for on every API answer
def account_key(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class Field:
    name: str  # snake_case key in storage; `api_name` is the camelCase key of the JSON API
    label: str  # the guide's words, shown as they are
    type: str = "text"
    sensitive: bool = False
    required: bool = False
    help: str = ""
    placeholder: str = ""
    default: Any = None
    pattern: str | None = None
    pattern_message: str = "Enter a value in the expected format."
    min_length: int | None = None
    max_length: int | None = None
    choices: tuple[tuple[str, str], ...] = ()
    group: str | None = None  # nests the value in the API, e.g. "features"
    # (field, values): the field applies only while another field holds one of these values.
    shown_when: tuple[str, tuple[str, ...]] | None = None
    api_key: str | None = None  # overrides the derived camelCase name
    # A json field's declared keys, each its own input (e.g. Custom CRM's credentials per auth type).
    parts: tuple[Field, ...] = ()
    # Filled in by the OAuth flow (crm.providers.oauth), never by the user: no form input, not accepted
    # from the API, not published in the providers' schema.
    oauth_token: bool = False

    def __post_init__(self):
        if self.type not in FIELD_TYPES:
            raise ValueError(f"unknown field type {self.type!r}")

    @property
    def api_name(self) -> str:
        return self.api_key or camel_case(self.name)

    def applies(self, values: Mapping[str, Any]) -> bool:
        if self.shown_when is None:
            return True
        other, allowed = self.shown_when
        return values.get(other) in allowed

    def describe(self) -> dict[str, Any]:
        """The field as the providers endpoint publishes it."""
        info = {
            "name": self.api_name,
            "label": self.label,
            "type": self.type,
            "sensitive": self.sensitive,
            "required": self.required,
            "help": self.help,
            "placeholder": self.placeholder,
            "default": self.default,
            "group": self.group,
            "validation": {
                "pattern": self.pattern,
                "minLength": self.min_length,
                "maxLength": self.max_length,
                "choices": [{"value": v, "label": label} for v, label in self.choices],
            },
        }
        if self.shown_when:
            info["shownWhen"] = {"field": camel_case(self.shown_when[0]), "values": list(self.shown_when[1])}
        if self.parts:
            info["parts"] = [part.describe() for part in self.parts]
        return info

    def part_key(self, part: Field) -> str:
        """The name a part's input and its errors go by, e.g. "credentials.apiKey"."""
        return f"{self.name}.{part.name}"


NAME_FIELD = Field(
    "name",
    "Integration Name",
    required=True,
    max_length=100,
    placeholder="My CRM",
    help="A name you will recognise on the dashboard.",
)


class FieldError(ValueError):
    """One field's value is unusable; the message is shown beside the field."""


def origin(url: str | None) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of a URL: what decides where a stored secret may be sent."""
    if not url:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def clean_url(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise FieldError(f"Use at most {MAX_TEXT} characters.")
    if any(ch.isspace() for ch in value) or "\\" in value:
        raise FieldError("A URL cannot contain spaces or backslashes.")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("https", "http"):
        raise FieldError("Enter a full address starting with https://, e.g. https://app.chatwoot.com.")
    if not parts.hostname:
        raise FieldError("Enter a full address with a host name, e.g. https://crm.example.com.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise FieldError("Put credentials in their own fields, not in the URL (remove the part before @).")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise FieldError("The port in this URL is not a number between 1 and 65535.") from None
    if parts.query or parts.fragment:
        raise FieldError("Remove the ?query or #fragment: enter only the server address.")
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


def unsafe_character_problem(text: str, line_breaks: bool = False, bidi: bool = False) -> str | None:
    """What is wrong with `text` if it holds a control or bidi character, else None. The one rule for
    every text the app stores: integration fields (form and API alike) and contacts. Free text such as
    a message may allow line breaks and tabs (`line_breaks`) and direction marks (`bidi`)."""
    for match in CONTROL_CHARACTERS.finditer(text):
        char = match.group()
        if line_breaks and char in "\r\n\t":
            continue
        what = CONTROL_NAMES.get(char, "a control character")
        return f"Remove {what} (U+{ord(char):04X}): this field cannot contain control characters."
    direction = None if bidi else BIDI_CONTROLS.search(text)
    if direction:
        return f"Remove the invisible text-direction character U+{ord(direction.group()):04X}."
    return None


def refuse_unsafe_characters(text: str, line_breaks: bool = False) -> str:
    problem = unsafe_character_problem(text, line_breaks)
    if problem:
        raise FieldError(problem)
    return text


def _as_text(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("Enter text.")
    return value.strip()


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise FieldError("Choose on or off.")


def _as_number(value: Any) -> int:
    if isinstance(value, bool):
        raise FieldError("Enter a whole number.")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d{1,15}\s*", value):
        number = int(value)
    else:
        raise FieldError("Enter a whole number.")
    if number < 1 or number > 10**15:
        raise FieldError("Enter a whole number greater than zero.")
    return number


def _as_json_object(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        if len(value) > 64 * 1024:  # 20 entries of MAX_TEXT, with room for keys
            raise FieldError("This JSON object is too long.")
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise FieldError('Enter a JSON object, e.g. {"apiKey": "..."}.') from None
    if not isinstance(value, dict):
        raise FieldError('Enter a JSON object, e.g. {"apiKey": "..."}.')
    if len(value) > 20:
        raise FieldError("Use at most 20 entries.")
    result = {}
    for key, item in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", key):
            raise FieldError("Keys must be names made of letters, digits and _.")
        if not isinstance(item, str) or not item.strip() or len(item) > MAX_TEXT:
            raise FieldError(f'The value of "{key}" must be non-empty text.')
        problem = unsafe_character_problem(item.strip())
        if problem:
            raise FieldError(f'The value of "{key}": {problem}')
        result[key] = item.strip()
    return result


def _is_summary(value: Any, spec: Field) -> bool:
    if not isinstance(value, Mapping):
        return False
    if spec.type == "json":
        return bool(value) and all(isinstance(v, Mapping) and "configured" in v for v in value.values())
    return "configured" in value


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str | dict | list) and not value)


def clean_value(spec: Field, value: Any) -> Any:
    """Convert and check one non-blank value against its field spec."""
    if spec.type == "checkbox":
        return _as_bool(value)
    if spec.type == "number":
        return _as_number(value)
    if spec.type == "json":
        return _as_json_object(value)
    if spec.type == "url":
        return clean_url(refuse_unsafe_characters(_as_text(value)))
    text = refuse_unsafe_characters(_as_text(value), line_breaks=spec.type == "textarea")
    if spec.type == "select" and text not in {v for v, _ in spec.choices}:
        raise FieldError(f"Choose one of: {', '.join(label for _, label in spec.choices)}.")
    limit = spec.max_length or MAX_TEXT
    if len(text) > limit:
        raise FieldError(f"Use at most {limit} characters.")
    if spec.min_length and len(text) < spec.min_length:
        raise FieldError(f"Use at least {spec.min_length} characters.")
    if spec.pattern and not re.fullmatch(spec.pattern, text):
        raise FieldError(spec.pattern_message)
    return text


def _without_hidden_parts(spec: Field, value: Any, raw: Mapping[str, Any]) -> Any:
    """Drop the parts of other choices (e.g. an API key while Bearer is chosen) before any check."""
    if isinstance(value, str):
        if len(value) > 64 * 1024:
            return value  # clean_value refuses it without parsing it
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return value  # clean_value says what is wrong with it
    if not isinstance(value, Mapping):
        return value
    hidden = {part.name for part in spec.parts if not part.applies(raw)}
    return {key: item for key, item in value.items() if key not in hidden}


def _check_parts(spec: Field, result: Validation) -> None:
    """Keep the parts of `spec` that apply (another auth type's keys are neither checked nor stored)
    and name each missing one. Saved parts are replaced together: typing one means typing them all."""
    if spec.name in result.errors:
        return
    applicable = {part.name: part for part in spec.parts if part.applies(result.values)}
    typed: dict[str, Any] = {}
    for key, value in (result.values.pop(spec.name, None) or {}).items():
        if key in applicable:
            try:
                typed[key] = clean_value(applicable[key], value)
            except FieldError as exc:
                result.add_error(spec.part_key(applicable[key]), str(exc))
    if typed:
        result.values[spec.name] = typed
    stored = result.stored.get(spec.name) or {}
    for part in applicable.values():
        if not part.required or part.name in typed or spec.part_key(part) in result.errors:
            continue
        if typed and stored:
            result.add_error(
                spec.part_key(part),
                f"Enter the {part.label} as well: saved {spec.label.lower()} are replaced together.",
            )
        elif typed or part.name not in stored:
            result.add_error(spec.part_key(part), f"{part.label} is required.")


def _parts_from_api(spec: Field, configuration: Mapping[str, Any]) -> Any:
    """A parted field as the guide writes it ({"credentials": {"apiKey": "..."}}, or its JSON text) or
    as flat keys ({"apiKey": "..."}). Parts sent back redacted ({"configured": true}) are left out."""
    value = configuration.get(spec.api_name)
    if value is None:
        value = {part.name: configuration[part.name] for part in spec.parts if configuration.get(part.name) is not None}
    if isinstance(value, Mapping):
        value = {key: item for key, item in value.items() if not isinstance(item, Mapping)}
    return value


@dataclass
class Validation:
    values: dict[str, Any] = field(default_factory=dict)
    stored: Mapping[str, Any] = field(default_factory=dict)  # sealed secrets already on the row
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add_error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


class Provider:
    """Base class of every CRM provider. Subclasses declare, the base derives."""

    id: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str] = ""
    icon: ClassVar[str] = "crm.svg"  # a file under static/icons/
    features: ClassVar[tuple[str, ...]] = ()
    requires_oauth: ClassVar[bool] = False
    availability: ClassVar[str] = "available"  # or "coming_soon"
    # The platform can act in it (inboxes, contacts, messages), so it may be the primary integration.
    can_operate: ClassVar[bool] = False
    docs_url: ClassVar[str] = ""
    config_fields: ClassVar[tuple[Field, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if "can_operate" not in cls.__dict__:  # derived from what it declares it can do
            cls.can_operate = any(name in cls.features for name in ("contacts", "messages", "notes"))

    @classmethod
    def fields(cls) -> tuple[Field, ...]:
        """What the user fills in: forms, the API and validation. OAuth tokens are not among them."""
        return (NAME_FIELD, *(f for f in cls.config_fields if not f.oauth_token))

    @classmethod
    def token_fields(cls) -> tuple[Field, ...]:
        """The fields the OAuth flow fills in (crm.providers.oauth): access and refresh token, expiry."""
        return tuple(f for f in cls.config_fields if f.oauth_token)

    @classmethod
    def endpoints(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        """Addresses that come from the operator's settings, not the user (e.g. HUBSPOT_API_URL for a
        sandbox). Merged into the live configuration on the outbound path; never stored."""
        return {}

    @classmethod
    def wants_provisioning(cls, values: Mapping[str, Any]) -> bool:
        """Whether a save of these values needs work in the CRM (see Connection.provision)."""
        return False

    @classmethod
    def account_key(cls, config: Mapping[str, Any], integration_id: str | None) -> str:
        """Names the CRM account a configuration reaches: contacts' remote ids are kept per account key,
        so a contact synced to one account is sent again to another."""
        return account_key(f"{cls.id}|{integration_id}")

    @classmethod
    def connect(cls, config: Mapping[str, Any], http: GuardedClient, deadline: float | None = None, **context: Any):
        """A `crm.providers.contract.Connection` for the operations this provider declares in
        `features`; `config` is the live configuration (secrets opened, endpoints merged)."""
        raise NotImplementedError(f"{cls.name} has no operations")

    @classmethod
    def field(cls, name: str) -> Field:
        return next(f for f in cls.fields() if f.name == name)

    @classmethod
    def sensitive_fields(cls) -> tuple[Field, ...]:
        return tuple(f for f in (NAME_FIELD, *cls.config_fields) if f.sensitive)  # OAuth tokens included

    @classmethod
    def is_available(cls) -> bool:
        return cls.availability == "available"

    @classmethod
    def normalize(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Tidy cleaned values (e.g. a pasted dashboard URL); runs before the cross-field check."""
        return values

    @classmethod
    def check(cls, values: dict[str, Any], result: Validation) -> None:
        """Cross-field rules; add errors to `result`."""

    @classmethod
    def validate(cls, raw: Mapping[str, Any], stored_secrets: Mapping[str, Any] | None = None) -> Validation:
        """Check `raw` (snake_case keys) against the schema.

        `stored_secrets` names the sensitive fields that already hold a value: a blank input for
        one of them means "keep it", so it is neither required nor returned.
        """
        stored_secrets = stored_secrets or {}
        result = Validation(stored=dict(stored_secrets))
        for spec in cls.fields():
            value = raw.get(spec.name)
            if spec.parts:
                value = _without_hidden_parts(spec, value, {f.name: raw.get(f.name, f.default) for f in cls.fields()})
            if is_blank(value):
                if spec.default is not None and not spec.sensitive:
                    result.values[spec.name] = spec.default
                continue
            try:
                result.values[spec.name] = clean_value(spec, value)
            except FieldError as exc:
                result.add_error(spec.name, str(exc))
        result.values = cls.normalize(result.values)
        for spec in cls.fields():
            if spec.parts:
                _check_parts(spec, result)
        for spec in cls.fields():
            if spec.name in result.values and not spec.applies(result.values):
                del result.values[spec.name]  # a value for a field the chosen options hide
            elif (
                spec.required
                and spec.applies(result.values)
                and spec.name not in result.values
                and spec.name not in result.errors
                and not (spec.sensitive and spec.name in stored_secrets)
                and not spec.parts  # its parts say which of them is missing
            ):
                result.add_error(spec.name, f"{spec.label} is required.")
        if not result.errors:
            cls.check(result.values, result)
        return result

    @classmethod
    def test_connection(cls, config: dict[str, Any], http: GuardedClient) -> ConnectionResult:
        """Call the CRM with `config` (secrets opened) through the guarded client `http`.

        May raise OutboundError or CRMError; `run_test` turns those into results."""
        raise NotImplementedError(f"{cls.name} cannot be tested yet")

    # --- what the pages say about this provider ----------------------------------------------------

    # Outcome → what to do next, in this provider's words; outcomes not listed use GENERAL_ADVICE.
    advice_table: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    @classmethod
    def advice(cls, outcome: str) -> list[str]:
        """What to do after a failed Test Connection with this outcome."""
        if outcome == "ok":
            return []
        return list(cls.advice_table.get(outcome) or GENERAL_ADVICE.get(outcome, ()))

    @classmethod
    def card_lines(cls, config_summary: Mapping[str, Any]) -> list[str]:
        """Short facts the dashboard card shows under the name, from the stored non-secret values."""
        host = host_of(config_summary.get("base_url"))
        return [host] if host else []

    @classmethod
    def default_name(cls, values: Mapping[str, Any], result: ConnectionResult | None = None) -> str:
        """The Integration Name proposed after a green test when the user left it empty."""
        return cls.name

    @classmethod
    def run_test(cls, config: dict[str, Any], http: GuardedClient) -> ConnectionResult:
        try:
            return cls.test_connection(config, http)
        except OutboundError as exc:
            return ConnectionResult.failed(exc.outcome, network_message(exc.outcome, cls.name, exc.detail))
        except CRMError as exc:
            return ConnectionResult.failed(exc.outcome, exc.message)

    # --- the JSON API's names: derived here, used by the API, its document and its tests ----------

    @classmethod
    def api_path(cls, name: str) -> str:
        """The JSON API's name for a field, e.g. "features.autoCreateInboxes"."""
        spec = next((f for f in cls.fields() if f.name == name), None)
        if spec is None:
            return name
        return f"{spec.group}.{spec.api_name}" if spec.group else spec.api_name

    @classmethod
    def values_from_api(cls, configuration: Mapping[str, Any]) -> dict[str, Any]:
        """Schema values (snake_case) from an API configuration object. Unknown keys are ignored, so
        nothing outside the schema (an owner, an id) can be assigned through it. A redacted secret
        sent back as it was read ({"configured": true, ...}) means "keep the stored one"."""
        values: dict[str, Any] = {}
        for spec in cls.fields()[1:]:
            if spec.parts:
                value = _parts_from_api(spec, configuration)
                if value:
                    values[spec.name] = value
                continue
            container = configuration.get(spec.group) if spec.group else configuration
            if not isinstance(container, Mapping) or spec.api_name not in container:
                continue
            value = container[spec.api_name]
            if spec.sensitive and _is_summary(value, spec):
                continue
            values[spec.name] = value
        return values

    @classmethod
    def values_to_api(cls, values: Mapping[str, Any], secret: Any) -> dict[str, Any]:
        """An API configuration object; `secret(spec)` gives what may be shown of a sensitive field."""
        result: dict[str, Any] = {"provider": cls.id}
        for spec in cls.fields()[1:]:  # OAuth tokens never leave, not even as a summary
            if spec.name not in values:
                continue
            value = secret(spec) if spec.sensitive else values[spec.name]
            target = result.setdefault(spec.group, {}) if spec.group else result
            target[spec.api_name] = value
        return result

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "id": cls.id,
            "name": cls.name,
            "description": cls.description,
            "icon": cls.icon,
            "features": list(cls.features),
            "requiresOAuth": cls.requires_oauth,
            "availability": cls.availability,
            "docsUrl": cls.docs_url,
            "fields": [f.describe() for f in cls.fields()],
        }


# --- connection tests ----------------------------------------------------------------------------

OUTCOMES = (
    "ok",
    "invalid_url",
    "blocked_destination",
    "dns_error",
    "unreachable",
    "timeout",
    "tls_error",
    "redirected",
    "auth_failed",
    "account_not_found",
    "insufficient_permissions",
    "not_a_crm",
    "rate_limited",
    "server_error",
)


def host_of(url: Any) -> str:
    """The host (and a non-default port) of a stored URL, for cards and proposed names."""
    if not isinstance(url, str) or not url:
        return ""
    parts = urlsplit(url)
    return parts.netloc.lower() or ""


GENERAL_ADVICE: dict[str, tuple[str, ...]] = {
    "invalid_url": ("Enter the full address, starting with https://, e.g. https://crm.example.com.",),
    "blocked_destination": (
        "Use the address your CRM is reachable at from the internet.",
        "A CRM on a private network needs the operator to allow it (CRM_ALLOW_PRIVATE_HOSTS).",
    ),
    "dns_error": ("Check the spelling of the host name.", "A brand-new domain can take a while to resolve."),
    "unreachable": (
        "Check that the server is running and the address and port are right.",
        "A firewall may block connections from this platform.",
    ),
    "timeout": ("The server may be overloaded or behind a slow proxy: try again in a few minutes.",),
    "tls_error": (
        "The certificate must be valid for this host name and not expired.",
        "A private certificate authority must be trusted by the operator (CRM_CA_BUNDLE).",
    ),
    "redirected": ("Use the address the server redirected to, e.g. https:// instead of http://, or without www.",),
    "auth_failed": ("Copy the credential again from your CRM: one that was reset or has expired stops working.",),
    "account_not_found": ("Check the account or workspace your settings name.",),
    "insufficient_permissions": ("Use a credential whose user may do what the enabled features need.",),
    "not_a_crm": ("Enter the address of your CRM's API, as its documentation gives it.",),
    "rate_limited": ("Wait a minute before testing again.",),
    "server_error": ("Try again later; if it persists, check the CRM's status page or server logs.",),
}


def network_message(outcome: str, provider_name: str, detail: str = "") -> str:
    """Our words for what went wrong on the way to the server, with the fix. Never the remote's words."""
    messages = {
        "invalid_url": (
            "The address is not one we may call. Enter the full https:// address of your server, "
            "without a user name or password in it."
            if detail != "http"
            else "Plain http:// is switched off for integrations. Use the https:// address of your server."
        ),
        "blocked_destination": (
            f"Port {detail.removeprefix('port ')} is not allowed for integrations. Use your server's https "
            "address on the standard port (443), or ask your administrator to allow this port (CRM_ALLOWED_PORTS)."
            if detail.startswith("port ")
            else "This address points to a private or internal network, which integrations may not reach. "
            "Use the public address of your server, or ask the operator to allow it (CRM_ALLOW_PRIVATE_HOSTS)."
        ),
        "dns_error": "The host name could not be found. Check the spelling of the address.",
        "unreachable": (
            "The server could not be reached. Check the address and port, and that the server is running "
            "and reachable from the internet."
        ),
        "timeout": (f"{provider_name} did not answer in time. Check the address, or try again in a few minutes."),
        "tls_error": (
            "The server's TLS certificate could not be verified. Use an address with a valid certificate, "
            "or ask the operator to trust your certificate authority (CRM_CA_BUNDLE)."
        ),
        "redirected": (
            f"The server redirected to {detail or 'another address'}. If that is right, use it as the address."
        ),
        "rate_limited": (
            "This platform is busy with other CRM calls right now. Try again in a few seconds."
            if detail == "busy"
            else f"{provider_name} is limiting requests right now. Wait a minute, then test again."
        ),
        "server_error": (
            f"{provider_name} answered with a server error. Try again later; if it persists, "
            "check the server's logs or status page."
        ),
    }
    return messages[outcome]


def raise_for_common_status(response: Response, provider_name: str) -> None:
    """The answers every CRM gives alike: throttling and server errors."""
    if response.status == 429:
        raise CRMError("rate_limited", network_message("rate_limited", provider_name))
    if response.status >= 500:
        raise CRMError("server_error", network_message("server_error", provider_name))


class CRMError(Exception):
    """A CRM answered, and the answer means the call failed. Message in our words, with the fix."""

    def __init__(self, outcome: str, message: str):
        assert outcome in OUTCOMES, outcome  # nosec B101  # catches a typo in our own code, not bad input
        super().__init__(message)
        self.outcome = outcome
        self.message = message


@dataclass
class ConnectionResult:
    outcome: str
    message: str
    verified: list[str] = field(default_factory=list)  # what was checked, for the green result
    details: dict[str, Any] = field(default_factory=dict)  # e.g. role, version, account name

    @property
    def success(self) -> bool:
        return self.outcome == "ok"

    @classmethod
    def failed(cls, outcome: str, message: str, verified: list[str] | None = None) -> ConnectionResult:
        return cls(outcome, message, verified or [])
