"""Python literals for untrusted values: strings, docstrings, numbers, tuples, lists, dicts.

Metainfo is untrusted input. Every value that ends up in generated source goes through
:func:`literal` (or :func:`docstring`), which writes it in a form that the tokenizer reads back
as exactly that value and nothing else: backslashes, quotes, control characters, line and
paragraph separators, bidi marks and lone surrogates are escaped, so no content can close the
literal, start a comment or hide code from a reader. Printable non-ASCII text (``Ångström``)
stays readable. Tests parse every generated module with :mod:`ast` and compare the values.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from archivemap.errors import CodegenError

__all__ = ["doc_text", "docstring", "literal", "string"]

_MAX_DEPTH = 32
_SIMPLE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _is_safe(ch: str) -> bool:
    # isprintable() is False for control characters, line/paragraph separators, bidi marks
    # and other format characters; surrogates are never printable either.
    return ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF


def string(value: str) -> str:
    """A double-quoted literal for ``value``."""
    out = ['"']
    for ch in value:
        simple = _SIMPLE_ESCAPES.get(ch)
        if simple is not None:
            out.append(simple)
        elif _is_safe(ch):
            out.append(ch)
        else:
            out.append(_escape_char(ch))
    out.append('"')
    return "".join(out)


def doc_text(text: str) -> str:
    """The value a generated docstring holds for ``text``, up to :func:`inspect.cleandoc`.

    CPython cannot store lone surrogates in a class docstring (class creation fails), so
    they are kept as visible text: U+D800 becomes the six characters ``\\ud800``.
    """
    if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return text
    return "".join(f"\\u{ord(ch):04x}" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


def docstring(text: str, indent: str) -> str:
    """A triple-quoted docstring for ``text``, its continuation lines indented by ``indent``.

    The text is normalised with :func:`inspect.cleandoc` first (NOMAD descriptions are often
    indented Python docstrings themselves), so ``inspect.cleandoc`` of the literal equals
    ``inspect.cleandoc(doc_text(text))``.
    """
    lines = inspect.cleandoc(doc_text(text)).split("\n")
    escaped = []
    for line in lines:
        parts = []
        for ch in line:
            if ch == "\\":
                parts.append("\\\\")
            elif ch == '"':
                parts.append('\\"')  # no quote can ever join another to end the literal
            elif ch == "\t" or _is_safe(ch):
                parts.append(ch)
            else:
                parts.append(_escape_char(ch))
        escaped.append("".join(parts))
    if len(escaped) == 1:
        return f'"""{escaped[0]}"""'
    body = ("\n").join(escaped[:1] + [(indent + line) if line else "" for line in escaped[1:]])
    return f'"""{body}\n{indent}"""'


def literal(value: Any, _depth: int = 0) -> str:
    """The Python literal of a JSON-like value (str, int, float, bool, None, tuple, list, dict).

    Raises:
        CodegenError: for any other type, or nesting deeper than 32 levels.
    """
    if _depth > _MAX_DEPTH:
        raise CodegenError("value nested too deeply to render")
    if value is None or value is True or value is False:
        return repr(value)
    if isinstance(value, str):
        return string(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(float(value))
    if isinstance(value, tuple):
        items = [literal(v, _depth + 1) for v in value]
        if len(items) == 1:
            return f"({items[0]},)"
        return "(" + ", ".join(items) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v, _depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            if not isinstance(k, str):
                raise CodegenError(f"dict keys must be strings, got {type(k).__name__}")
            items.append(f"{string(k)}: {literal(v, _depth + 1)}")
        return "{" + ", ".join(items) + "}"
    raise CodegenError(f"cannot render a value of type {type(value).__name__}")
