"""Metadata values as HTML: every special type shown for what it is, every string escaped.

The one place pages turn a value into markup. Text goes through
``markupsafe.escape``; a ``Uri`` becomes a link only when it is an absolute
``http``/``https`` URL (a ``javascript:`` or ``data:`` one stays text);
a ``StorageSize`` reads in binary units with the exact bytes in its title;
``Path`` and ``DType`` are marked.
"""

from __future__ import annotations

import datetime
import math
from typing import Any, Final
from urllib.parse import urlsplit

from markupsafe import Markup, escape

from metastream.schemas import DType, Path, StorageSize, Uri
from metastream.schemas.text import escape_controls
from metastream.sizes import human_size

INLINE_ITEMS: Final = 8
"""Lists of at most this many scalars are shown on one line."""


def is_web_link(text: str) -> bool:
    """Whether ``text`` is an absolute http(s) URL, safe to put in an ``href``."""
    if text != text.strip() or any(c.isspace() or ord(c) < 32 for c in text):
        return False
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def short_number(value: int | float) -> str:
    """A number as a table cell shows it: floats to 6 significant digits."""
    if type(value) is float:
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.6g}"
    return f"{value:,}"  # as the comparison table shows it (toLocaleString)


def _text(value: str) -> Markup:
    return escape(escape_controls(value))


def _badge(kind: str) -> Markup:
    return Markup('<span class="badge badge-{0}">{0}</span>').format(kind)


def _scalar(value: Any) -> bool:
    return not isinstance(value, list | tuple | set | frozenset | dict)


def _items(value: Any) -> list[Any]:
    if isinstance(value, set | frozenset):
        try:
            return sorted(value, key=lambda v: (type(v).__name__, v))
        except TypeError:
            return list(value)
    return list(value)


_BRACKETS: dict[type, tuple[str, str]] = {tuple: ("(", ")"), set: ("{", "}"), frozenset: ("{", "}")}


def value_html(value: Any) -> Markup:
    """One metadata value as HTML."""
    cls = type(value)
    if value is None:
        return Markup('<span class="v-null">None</span>')
    if cls is bool:
        return Markup('<span class="v-bool">{}</span>').format("true" if value else "false")
    if cls is Uri:
        text = str.__str__(value)
        if is_web_link(text):
            return Markup(
                '<a class="v-uri" href="{0}" rel="noopener noreferrer nofollow" '
                'target="_blank">{1}</a>'
            ).format(text, _text(text))
        return Markup(
            '<span class="v-uri v-uri-plain" title="not an http(s) link">{}</span>'
        ).format(_text(text))
    if cls is Path:
        return Markup('<code class="v-path">{}</code>{}').format(
            _text(str.__str__(value)), _badge("path")
        )
    if cls is DType:
        return Markup('<code class="v-dtype">{}</code>{}').format(
            _text(str.__str__(value)), _badge("dtype")
        )
    if cls is StorageSize:
        size = int(value)
        return Markup('<span class="v-size" title="{} bytes">{}</span>').format(
            f"{size:,}", human_size(size)
        )
    if cls is str:
        return Markup('<span class="v-str">{}</span>').format(_text(value))
    if cls is int or cls is float:
        return Markup('<span class="v-num" title="{}">{}</span>').format(
            repr(value), short_number(value)
        )
    if cls is datetime.datetime:
        shown = value.isoformat(sep=" ", timespec="seconds")
        return Markup('<time class="v-time" datetime="{0}">{1}</time>').format(
            value.isoformat(), shown
        )
    if cls is dict:
        return dict_html(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = _items(value)
        badge = _badge(cls.__name__) if cls is not list else Markup("")
        if len(items) <= INLINE_ITEMS and all(_scalar(i) for i in items):
            inner = Markup(", ").join(value_html(i) for i in items)
            opening, closing = _BRACKETS.get(
                cls, ("[", "]")
            )  # as Python (and the comparison) write it
            return Markup('<span class="v-list">{}{}{}</span>{}').format(
                opening, inner, closing, badge
            )
        rows = Markup("").join(Markup("<li>{}</li>").format(value_html(i)) for i in items)
        return Markup('<ol class="v-items">{}</ol>{}').format(rows, badge)
    return Markup('<span class="v-str">{}</span>').format(_text(repr(value)))


def dict_html(value: dict[str, Any]) -> Markup:
    if not value:
        return Markup('<span class="v-null">{}</span>').format("{}")
    rows = Markup("").join(
        Markup('<tr><th scope="row">{}</th><td>{}</td></tr>').format(_text(k), value_html(v))
        for k, v in value.items()
    )
    return Markup('<table class="kv nested">{}</table>').format(rows)


def cards(metadata: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """One card per top-level dict value, then the rest as the "general" card (title ``None``)."""
    general = {k: v for k, v in metadata.items() if type(v) is not dict}
    out: list[tuple[str | None, dict[str, Any]]] = [
        (k, v) for k, v in metadata.items() if type(v) is dict
    ]
    if general:
        out.insert(0, (None, general))
    return out
