"""``metastream schema asyncapi``: the stream's contract, for services that subscribe."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from metastream.config import Settings


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "schema",
        help="write the event stream's contract (AsyncAPI 3.0)",
        description=(
            "Documents of the contract other services rely on. `asyncapi` writes the AsyncAPI "
            "3.0 document of the event stream: a message per event type, payload schemas made "
            "from the event structs, the msgpack encoding of ids and metadata values, and the "
            "evolution rules."
        ),
    )
    kinds = parser.add_subparsers(dest="schema_kind", metavar="KIND")
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2, uses_db=False)
    asyncapi = kinds.add_parser(
        "asyncapi",
        help="the AsyncAPI 3.0 document of the event stream, as JSON",
        description="Write the AsyncAPI 3.0 document (JSON) of the stream metastream publishes to.",
    )
    asyncapi.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE instead of standard output",
    )
    asyncapi.add_argument(
        "--stream",
        help="the stream's name in the document (default: $METASTREAM_STREAM, else "
        "metastream:events)",
    )
    asyncapi.set_defaults(handler=cmd_asyncapi)


def cmd_asyncapi(args: argparse.Namespace) -> int:
    from metastream.schemas.asyncapi import asyncapi_json

    text = asyncapi_json(args.stream or Settings.from_env().stream)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
