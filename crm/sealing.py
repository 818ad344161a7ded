"""The one walk over a configuration's secrets: sealing, opening, summarising and re-sealing.

A sensitive field holds one sealed string, or (a JSON field such as the Custom CRM's credentials) an
object of sealed strings. Each string is bound to its owner, its integration and its name: `field`, or
`field.key` inside an object (crm.crypto.Binding), so a value copied to another row, user or field
does not open. Everything that touches stored secrets goes through `walk`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from crm.crypto import Binding, Keyring

# (binding name, the stored or plain string) -> what to keep in its place
Step = Callable[[str, Any], Any]


def items(name: str, value: Any) -> Iterator[tuple[str, Any]]:
    """(binding name, string) of one sensitive field's value: one, or one per key of an object."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield f"{name}.{key}", item
    elif value is not None:
        yield name, value


def walk(name: str, value: Any, step: Step) -> Any:
    """The field's value with `step` applied to each of its strings, in the same shape."""
    if isinstance(value, Mapping):
        return {key: step(f"{name}.{key}", item) for key, item in value.items()}
    return step(name, value)


def seal(ring: Keyring, owner_id: int, integration_id: str, name: str, value: Any) -> Any:
    return walk(name, value, lambda binding, plain: ring.seal(plain, Binding(owner_id, integration_id, binding)))


def open_value(ring: Keyring, owner_id: int, integration_id: str, name: str, stored: Any) -> Any:
    """The plain value; raises CredentialUnreadable when any part does not open."""
    return walk(name, stored, lambda binding, token: ring.open(token, Binding(owner_id, integration_id, binding)))


def stored_items(configuration: Mapping[str, Any], names: list[str]) -> list[tuple[str, str]]:
    """(binding name, sealed string) of every secret stored in a configuration."""
    return [pair for name in names for pair in items(name, configuration.get(name))]
