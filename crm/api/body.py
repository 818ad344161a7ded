"""Reading JSON request bodies and shaping JSON answers for the API."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException

MAX_BODY_BYTES = 64 * 1024
MAX_NESTING = 32
JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
JSON_BRACKET = re.compile(r"[\[\]{}]")


class APIError(HTTPException):
    """An error answered as JSON: {"error": message, "fields": {...}}."""

    def __init__(self, code: int, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields

    def get_response(self, environ=None, scope=None) -> Response:
        payload: dict[str, Any] = {"error": self.message}
        if self.fields is not None:
            payload["fields"] = self.fields
        return json_response(payload, self.code)


def is_api_request() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def json_response(payload: Any, status: int = 200) -> Response:
    response = jsonify(payload)
    response.status_code = status
    return response


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a clear 413, 415 or 400."""
    if request.mimetype != "application/json":
        raise APIError(415, "Send a JSON body with Content-Type: application/json.")
    too_large = APIError(413, f"The body is larger than {MAX_BODY_BYTES // 1024} KiB.")
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise too_large
    raw = request.get_data(cache=True)  # bounded by the app-wide MAX_CONTENT_LENGTH for chunked bodies
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise APIError(400, "The body is not valid JSON: send UTF-8.") from None
    if nesting_depth(text) > MAX_NESTING:
        raise APIError(400, f"The body is nested deeper than {MAX_NESTING} levels.")
    try:
        body = json.loads(text)
    except ValueError:
        raise APIError(400, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise APIError(400, "The body must be a JSON object.")
    return body


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text`, counted without parsing (json.loads would recurse
    once per level and fail with RecursionError on a body of 64 KiB of brackets)."""
    depth = deepest = 0
    for bracket in JSON_BRACKET.findall(JSON_STRING.sub('""', text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest
