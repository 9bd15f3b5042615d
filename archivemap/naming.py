"""Python names for NOMAD names, the same for generated and run-time classes.

NOMAD names are *meant* to be identifiers, but metainfo is untrusted input: names may be
keywords (``class``, ``type``), clash with the section API (``to_dict``, ``m_parent``), contain
characters Python does not allow, or be absurdly long. The rules, applied in this order:

1. A valid ASCII identifier that is neither a keyword nor reserved stays as it is.
2. A keyword, soft keyword or reserved name gets one trailing underscore: ``class`` → ``class_``.
3. Anything else becomes ``<ascii-safe prefix>_<8 hex of sha256(name)>``, e.g.
   ``x):\\n import os`` → ``x_import_os_3b5c9e2a``: non-ASCII, punctuation, a leading digit,
   empty, longer than 64 characters, a trailing newline; a leading underscore (``_m_data``
   would be a section's private slot, and attrs strips leading underscores from ``__init__``
   arguments); and a name that rule 2 would produce for another name (``match_``, taken by
   ``match``). So two different NOMAD names never get one attribute; a class whose names are
   crafted to meet anyway is refused with a ``DefinitionError`` when it is built.

The original NOMAD name is always kept in the field's metadata and used for serialisation.
"""

from __future__ import annotations

import hashlib
import keyword
import re

__all__ = ["MAX_NAME", "RESERVED", "class_name", "module_name", "python_name", "safe_name"]

MAX_NAME = 64
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")  # \Z, not $: "name\n" is no identifier
_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")

#: Names a field must not take: the section API (sections.Section) and Python internals.
RESERVED = frozenset(
    {
        "m_def",
        "m_parent",
        "m_root",
        "m_path",
        "m_get",
        "m_resolve",
        "m_reference",
        "m_extras",
        "m_contents",
        "m_quantities",
        "m_sub_sections",
        "m_is_set",
        "m_fields",
        "m_schema",
        "m_entry_id",
        "m_qualified_name",
        "m_definition_id",
        "m_parent_index",
        "m_parent_sub_section",
        "m_set",
        "m_load",
        "m_warnings",
        "prefetch",
        "to_dict",
        "to_ase",
        "to_dataframe",
        "self",
        "cls",
        "attrs",
        "np",
        "pint",
        "typing",
        "annotations",
        "TYPE_CHECKING",
        "ClassVar",
        "Any",
    }
)


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _renamed(name: str, reserved: frozenset[str]) -> bool:
    return keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in reserved


def safe_name(name: str, reserved: frozenset[str] = RESERVED) -> str:
    """An identifier for ``name`` by the rules in this module's docstring."""
    if _IDENT.match(name) and len(name) <= MAX_NAME:
        if _renamed(name, reserved):
            return name + "_"
        if not (name.endswith("_") and _renamed(name[:-1], reserved)):
            return name
    prefix = _UNSAFE.sub("_", name).strip("_")[:40] or "x"
    if prefix[0].isdigit():
        prefix = "x" + prefix
    return f"{prefix}_{_digest(name)}"


def python_name(name: str) -> str:
    """The attribute name of a quantity or sub-section called ``name`` in NOMAD."""
    return safe_name(name)


def class_name(name: str) -> str:
    """The class name of a section called ``name`` (section names may be keywords too)."""
    return safe_name(name, reserved=frozenset({"Section", "attrs", "np", "pint"}))


def module_name(package: str) -> str:
    """The module (file) name of a NOMAD package: dots become underscores.

    ``runschema.calculation`` → ``runschema_calculation``. Collisions between different
    package names that map to one module name are resolved by the generator, which appends
    the name's hash to all but the first (in export order).
    """
    parts = [safe_name(p, reserved=frozenset()) for p in package.split(".")]
    joined = "_".join(p.strip("_") or "x" for p in parts)
    if len(joined) > MAX_NAME * 2:
        joined = joined[: MAX_NAME] + "_" + _digest(package)
    if joined[0].isdigit():
        joined = "_" + joined
    if keyword.iskeyword(joined):
        joined += "_"
    return joined
