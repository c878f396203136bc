"""Sphinx configuration of the smtpcore documentation.

Build it with ``make docs`` (warnings are errors). The pages are Markdown
(MyST); the API reference is generated from the docstrings (autodoc, Google
style through napoleon); the command-line reference from the click commands.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import smtpcore.adapters
import smtpcore.adapters.anyio
import smtpcore.adapters.asyncio
import smtpcore.adapters.blocking
import smtpcore.adapters.trio
import smtpcore.testing

import smtpcore


def _public_names_live_where_they_are_imported_from() -> None:
    """Document ``smtpcore._session.Session`` as ``smtpcore.Session``.

    The public names are defined in private modules and re-exported; the
    reference (signatures, type hints, base classes) should only ever show
    the public path. This changes ``__module__`` in the docs build only.
    """
    for module in (smtpcore, smtpcore.adapters, smtpcore.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__.startswith(
                module.__name__ + "._"
            ):
                obj.__module__ = module.__name__


_public_names_live_where_they_are_imported_from()

# An inline literal cannot end with a space in reStructuredText; a docstring
# that quotes a reply prefix such as ``334 `` means the space, so show it.
_LITERAL_WITH_TRAILING_SPACE = re.compile(r"(?:(?<=[\s(])|^)``([^`\n]*?\S) ``(?=[\s.,;:)]|$)")


def _fix_docstring(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    if what == "property":
        # Property docstrings here are prose. Napoleon would read "Recipients
        # the message never went to: safe to send again." as "type: text".
        lines[:] = (inspect.getdoc(obj) or "").splitlines()
    lines[:] = [_LITERAL_WITH_TRAILING_SPACE.sub(_visible_space, line) for line in lines]


def _visible_space(match: re.Match[str]) -> str:
    return f"``{match.group(1)}\u2423``"


def _drop_object_base(app: Any, name: str, obj: Any, options: Any, bases: list[Any]) -> None:
    # "Bases: object" says nothing.
    bases[:] = [base for base in bases if base is not object]


def setup(app: Any) -> None:
    # After napoleon (priority 500), which turns Google style into fields.
    app.connect("autodoc-process-docstring", _fix_docstring, priority=600)
    app.connect("autodoc-process-bases", _drop_object_base)


project = "smtpcore"
author = "The smtpcore developers"
copyright = "2026, The smtpcore developers"
release = smtpcore.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_click",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
# attacks.md is part of the security page (included there), not a page.
exclude_patterns = ["_build", "attacks.md"]

# -- MyST --------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- autodoc -----------------------------------------------------------------
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "separated"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Attributes as fields of their class: dataclass fields are not documented twice.
napoleon_use_ivar = True

# Command lines must keep their "--": no typographic dashes or quotes.
smartquotes = False

# -- HTML --------------------------------------------------------------------
html_theme = "furo"
html_title = f"smtpcore {release}"
html_show_sourcelink = False
pygments_style = "friendly"
pygments_dark_style = "monokai"
