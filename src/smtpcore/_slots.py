"""Frozen values built field by field, for the per-message paths.

A frozen dataclass's ``__init__`` takes its keywords in a dict and sets each
field through ``object.__setattr__``: about 5,000 machine instructions for a
two-field ``Write`` (``python -m bench.instructions``), and a message's
path builds about a dozen such values. Setting each field through its
slot's descriptor makes the same object at half the cost. The core's
builders (``smtpcore._events.build_*``, ``scan_body``'s ``BodyInfo``,
``OutgoingMessage.build``) use :func:`slot_setters`; each is tested against
its class's own ``__init__``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

#: Sets one field of a new instance, bypassing the frozen ``__setattr__``.
Setter = Callable[[object, object], None]


def slot_setters(cls: type, *names: str) -> tuple[Setter, ...]:
    """The slot descriptors' setters of ``cls``'s fields ``names``, which
    must be all of its fields, in the order the class declares them (so that
    a field added to the class later cannot be left unset)."""
    declared = tuple(f.name for f in dataclasses.fields(cls))
    if names != declared:
        raise TypeError(f"{cls.__name__} has the fields {declared}, not {names}")
    return tuple(cls.__dict__[name].__set__ for name in names)
