"""Secrets out of text: passwords in URLs, Authorization headers, API keys and the like become `***`.

Used by the logging filter on every line and on span content before it leaves the server. Conservative on
purpose: a value next to a secret-sounding key is hidden even when it was harmless.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

MASK = "***"

# scheme://user:password@host — the password goes, the user and host stay (they help debugging).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)(?P<secret>[^\s@/]+)(?=@)")

# A secret-sounding key, a separator (`=`, `:`, quoted or not) and its value; a scheme (Bearer, Basic) stays.
_SECRET_KEY = (
    r"[\w.-]*?(?:api[_-]?key|secret(?:[_-]?key)?|password|passwd|pwd|token|credentials?|authorization|cookie)"
)
_KEY_VALUE = re.compile(
    rf"""(?ix)
    (?P<head>\b{_SECRET_KEY}\b["']?\s*[:=]\s*["']?(?:(?:bearer|basic|token|digest)\s+)?)
    (?P<secret>[^\s"',;&)}}\]]+)
    """
)
_SECRET_KEY_NAME = re.compile(rf"(?i){_SECRET_KEY}")

# Key shapes that are secrets wherever they appear: OpenAI/Anthropic-style, Langfuse, LangSmith, GitHub tokens.
_BARE_TOKEN = re.compile(r"\b(?P<head>sk-(?:lf-|ant-)?|pk-lf-|lsv2_(?:pt|sk)_|gh[pousr]_)(?P<secret>[A-Za-z0-9_-]{8,})")


def redact(text: str) -> str:
    if not text:
        return text
    text = _URL_PASSWORD.sub(rf"\g<head>{MASK}", text)
    text = _KEY_VALUE.sub(lambda m: m["head"] + (m["secret"] if m["secret"] == MASK else MASK), text)
    return _BARE_TOKEN.sub(rf"\g<head>{MASK}", text)


def hide_secret(text: str, secret: str | None) -> str:
    """`text` with a known secret (as given, percent-encoded or decoded) replaced by ***, where it stands apart
    from letters and digits: a short password such as "p" must not eat the words around it ("***ort")."""
    if not secret:
        return text
    for form in sorted({secret, quote(secret, safe=""), unquote(secret)}, key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(form)}(?![A-Za-z0-9])", MASK, text)
    return text


def is_secret_key(name: str) -> bool:
    return bool(_SECRET_KEY_NAME.fullmatch(name))


def redact_value(value: Any) -> Any:
    """`redact` through dicts and lists; a value under a secret-sounding key is hidden whole."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: MASK if isinstance(k, str) and is_secret_key(k) else redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value
