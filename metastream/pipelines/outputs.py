"""Naming a step's outputs, as the reference does.

A step's return annotation names its outputs: one output is ``output``;
``tuple[A, B]`` gives ``output_0`` and ``output_1``; ``Annotated[T, "name"]``
names an output (and its artifact). Without an annotation the returned
value decides: a tuple is several outputs, ``None`` is none, anything else
is ``output``.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, NamedTuple


class Output(NamedTuple):
    name: str
    artifact: str | None
    """The artifact's name when the user chose it (``Annotated``); else a default is built."""


def _annotated_name(hint: Any) -> str | None:
    if typing.get_origin(hint) is typing.Annotated:
        for extra in typing.get_args(hint)[1:]:
            if isinstance(extra, str):
                return extra
    return None


def declared_outputs(func: Callable[..., Any]) -> list[Output] | None:
    """The outputs a step's annotation declares, or ``None`` when it declares nothing."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:
        return None
    if "return" not in hints:
        return None
    hint = hints["return"]
    if hint is None or hint is type(None):
        return []
    name = _annotated_name(hint)
    if name is not None:
        return [Output(name, name)]
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return None
        out = []
        for i, arg in enumerate(args):
            named = _annotated_name(arg)
            out.append(Output(named, named) if named else Output(f"output_{i}", None))
        return out
    return [Output("output", None)]


def produced_outputs(value: Any, declared: list[Output] | None) -> list[Output]:
    """The outputs a step produced, given what it returned."""
    if declared is not None:
        return declared
    if value is None:
        return []
    if type(value) is tuple:
        return [Output(f"output_{i}", None) for i in range(len(value))]
    return [Output("output", None)]
