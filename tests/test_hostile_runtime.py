"""The hostile metainfo corpus (tests/codegen/test_hostile.py) at run time: classes are built
with attrs.make_class and data is read through them, and nothing executes."""

from __future__ import annotations

import warnings
from pathlib import Path


from archivemap.errors import ArchivemapError
from archivemap.archive.load import load
from archivemap.archive.schema import Schema

from .codegen.test_hostile import _payloads, hostile_environment


def test_runtime_classes_from_hostile_metainfo_are_inert(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    env = hostile_environment(canary)
    # a root section so that data can be loaded through the hostile ones
    env["packages"].append(
        {
            "name": "nomad.datamodel.datamodel",
            "section_definitions": [
                {"name": "EntryArchive", "sub_sections": [
                    {"name": f"s{i}", "sub_section": f"/packages/0/section_definitions/{i}", "repeats": True}
                    for i in range(len(_payloads(canary)))
                ]}
            ],
        }
    )
    schema = Schema(env)
    built = 0
    for section in schema.environment.all_sections():
        try:
            cls = schema.class_for(section)
        except ArchivemapError:
            continue  # a clear, typed refusal is fine
        built += 1
        assert cls.__name__.isidentifier()
    assert built > len(_payloads(canary))
    data = {f"s{i}": [{text: text, f"enum_{i}": text, f"unit_{i}": [1.0], f"custom_{i}": text, f"np_{i}": text}]
            for i, text in enumerate(_payloads(canary))}
    archive = load(data, schema)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for section in archive.m_contents():
            for fm in section.m_set_fields():
                try:
                    getattr(section, fm.attribute)
                except ArchivemapError:
                    pass
    assert archive.to_dict() == data
    assert not canary.exists()
