"""Reference strings: the shortcut for ``#/...`` agrees with the general parser."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from archivemap.archive.references import ParsedReference, parse_reference

# segments as NOMAD writes them: names, indices, keys (anything but "/", "@", "?", "#")
_SEGMENT = st.text(st.characters(blacklist_characters="/@?#", blacklist_categories=("Cs",)), max_size=8)
_FRAGMENT = st.lists(_SEGMENT, max_size=6).map("/".join)
_DEFINITION_ID = "@" + "0123456789abcdef" * 2 + "01234567"


@given(_FRAGMENT)
def test_local_fragment_parses_as_with_a_definition_id(fragment: str) -> None:
    # a definition id suffix sends the same fragment through the general parser
    short = parse_reference("#/" + fragment)
    general = parse_reference("#/" + fragment + _DEFINITION_ID)
    assert short is not None and general is not None
    assert short.fragment == general.fragment == tuple(s for s in fragment.split("/") if s)
    assert short.is_local and general.is_local
    assert short.definition_id is None and general.definition_id == _DEFINITION_ID[1:]
    assert short.raw == "#/" + fragment


def test_local_shortcut_leaves_other_forms_to_the_general_parser() -> None:
    assert parse_reference("#/run/0/system/3") == ParsedReference("#/run/0/system/3", ("run", "0", "system", "3"))
    assert parse_reference("#/run/0?x=1") is None  # queries are not references
    upload = parse_reference("../upload/archive/abc#/run/0")
    assert upload is not None and upload.entry_id == "abc" and not upload.is_local
    legacy = parse_reference("/run/0/system/3")
    assert legacy is not None and legacy.fragment == ("run", "0", "system", "3")
    assert parse_reference("#data") == ParsedReference("#data", ("data",))
