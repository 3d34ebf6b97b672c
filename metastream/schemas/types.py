"""The special metadata types of the reference, and what a metadata value may be.

They are plain ``str``/``int`` subclasses, as in the reference, so they can be
used anywhere a string or an integer can. Unlike the reference, metastream
keeps their type: a ``Uri`` logged comes back as a ``Uri``.
"""

from __future__ import annotations

import datetime
from typing import TypeAlias, Union


class Uri(str):
    """A URI or URL; shown as a link."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Uri({str.__repr__(self)})"


class Path(str):
    """A file-system path."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Path({str.__repr__(self)})"


class DType(str):
    """A data type name, such as ``"int64"``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"DType({str.__repr__(self)})"


class StorageSize(int):
    """A size in bytes; shown in human units."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"StorageSize({int.__repr__(self)})"


MetadataType: TypeAlias = Union[  # noqa: UP007 - a runtime alias, readable in docs
    str,
    int,
    float,
    bool,
    None,
    datetime.datetime,
    Uri,
    Path,
    DType,
    StorageSize,
    list["MetadataType"],
    tuple["MetadataType", ...],
    set["MetadataType"],
    frozenset["MetadataType"],
    dict[str, "MetadataType"],
]
"""Everything a metadata value may be, at any nesting depth."""
