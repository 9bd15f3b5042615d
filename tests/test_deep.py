"""Deep nesting and reference cycles never raise RecursionError."""

from __future__ import annotations

import archivemap
from archivemap.archive.load import load

DEPTH = 10_000

METAINFO = {
    "packages": [
        {
            "name": "nomad.datamodel.datamodel",
            "section_definitions": [
                {
                    "name": "EntryArchive",
                    "sub_sections": [{"name": "node", "sub_section": "/packages/0/section_definitions/1"}],
                },
                {
                    "name": "Node",
                    "quantities": [
                        {"name": "ref", "type": {"type_kind": "reference", "type_data": "/packages/0/section_definitions/1"}},
                        {"name": "value", "type": {"type_kind": "python", "type_data": "int"}},
                    ],
                    "sub_sections": [{"name": "child", "sub_section": "/packages/0/section_definitions/1"}],
                },
            ],
        }
    ]
}


def _deep(depth: int = DEPTH, cycle: bool = True) -> dict:
    root: dict = {"node": {}}
    node = root["node"]
    for i in range(depth):
        node["value"] = i
        node["child"] = {}
        node = node["child"]
    if cycle:
        node["ref"] = "#/node"  # the deepest node points back to the top: a cycle through containment
    return root


def test_ten_thousand_levels() -> None:
    schema = archivemap.Schema(METAINFO)
    archive = load(_deep(), schema)
    node = archive.node
    for _ in range(DEPTH):
        node = node.child
    assert node.m_path().count("/") == DEPTH + 1
    assert node.ref is archive.node
    assert node.m_root is archive
    assert sum(1 for _ in archive.m_contents()) == DEPTH + 1
    path = "/node" + "/child" * DEPTH
    assert archive.m_resolve("#" + path) is node
    out = archive.to_dict()
    depth = 0
    cur = out["node"]
    while "child" in cur:
        cur = cur["child"]
        depth += 1
    assert depth == DEPTH


def test_pickling_deep_archives_works_to_the_json_limit_and_says_so_beyond() -> None:
    import copy
    import pickle

    schema = archivemap.Schema(METAINFO)
    for depth, fits in ((950, True), (5_000, False)):
        root = _deep(depth, cycle=False)
        archive = load(root, schema)
        if fits:  # the dict pickled as it is recursed once per level and failed here
            assert pickle.loads(pickle.dumps(archive)).to_dict() == root
            assert copy.deepcopy(archive).to_dict() == root
        else:
            try:
                pickle.dumps(archive)
            except pickle.PicklingError as error:
                assert "nested too deeply to pickle" in str(error)
            else:
                raise AssertionError("a 5,000-level archive pickled")
