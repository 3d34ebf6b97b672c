"""``metastream tail``'s lines: no user string can drive the terminal, in either form."""

from __future__ import annotations

import json

from metastream.cli.tail import event_line, json_line
from metastream.schemas import MetadataLogged
from metastream.schemas.refs import RunByName
from metastream.schemas.text import has_control_characters


def test_tail_lines_escape_control_characters_in_keys_and_values() -> None:
    event = MetadataLogged(target=RunByName("r\x1b[2J"), metadata={"k\x9b31m": "v\u2028"})
    line = json_line(event)
    assert not has_control_characters(line)
    assert json.loads(line)["metadata"] == {"k\x9b31m": "v\u2028"}
    assert not has_control_characters(event_line(event))
