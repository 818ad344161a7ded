"""Pages of a list in the JSON API: `?page` and `?perPage` in; the items, a `pagination` object
(`page`, `perPage`, `total`, `next`, `prev`) and a `Link` header (rel="next"/"prev") out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Response, request, url_for

from crm.api.body import APIError, json_response
from crm.providers.base import unsafe_character_problem

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000  # far beyond any real list; keeps OFFSET inside every database's integer range
MAX_SEARCH_LENGTH = 100
WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class PageRequest:
    page: int
    per_page: int
    search: str | None = None

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def slice(self, items: list) -> list:
        return items[self.offset : self.offset + self.per_page]


def invalid(field: str, message: str) -> APIError:
    return APIError(422, "Please correct the highlighted fields.", {field: [message]})


def _whole_number(name: str, default: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not WHOLE_NUMBER.fullmatch(raw.strip()) or not 1 <= int(raw) <= maximum:
        raise invalid(name, f"Use a whole number from 1 to {maximum}.")
    return int(raw)


def _search() -> str | None:
    raw = request.args.get("search")
    if raw is None:
        return None
    if len(raw) > MAX_SEARCH_LENGTH:
        raise invalid("search", f"Use at most {MAX_SEARCH_LENGTH} characters.")
    problem = unsafe_character_problem(raw)
    if problem:
        raise invalid("search", problem)
    return raw.strip() or None


def page_request(searchable: bool = False) -> PageRequest:
    """The page the client asked for, or a 422 naming `page`, `perPage` or `search`."""
    return PageRequest(
        page=_whole_number("page", 1, MAX_PAGE),
        per_page=_whole_number("perPage", DEFAULT_PER_PAGE, MAX_PER_PAGE),
        search=_search() if searchable else None,
    )


def _page_url(wanted: PageRequest, number: int) -> str:
    query: dict[str, Any] = {"page": number, "perPage": wanted.per_page}
    if wanted.search:
        query["search"] = wanted.search
    return url_for(request.endpoint, **(request.view_args or {}), **query)


def paginated(key: str, items: list[dict[str, Any]], total: int, wanted: PageRequest) -> Response:
    """`{key: items, "pagination": {...}}` with a Link header; `next`/`prev` are null at either end."""
    last = max(1, -(-total // wanted.per_page))
    next_url = _page_url(wanted, wanted.page + 1) if wanted.page < last else None
    prev_url = _page_url(wanted, min(wanted.page - 1, last)) if wanted.page > 1 else None
    response = json_response(
        {
            key: items,
            "pagination": {
                "page": wanted.page,
                "perPage": wanted.per_page,
                "total": total,
                "next": next_url,
                "prev": prev_url,
            },
        }
    )
    links = [f'<{url}>; rel="{rel}"' for rel, url in (("next", next_url), ("prev", prev_url)) if url]
    if links:
        response.headers["Link"] = ", ".join(links)
    return response
