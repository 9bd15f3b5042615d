"""Everything a user holds pickles: schemas, run-time classes, sections, sources, clients.

Each object goes through ``pickle.dumps``/``loads`` in this process, and through a fresh
Python process (``python -c``) that unpickles the bytes from a file and prints values as JSON.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import archivemap
from archivemap._json import read_json
from archivemap.archive.schema import Schema, SchemaSourceChangedError
from archivemap.archive._fetch import PartialList
from archivemap.archive.sections import Section
from archivemap.archive.sources import DirectorySource
from archivemap.remote.client import Client
from archivemap.server import LocalServer

from .conftest import REPO, SAMPLES, shared_archives

METAINFO = SAMPLES / "metainfo.json"
FILES = sorted((SAMPLES / "archives").glob("*.archive.json"))

_RUNNER = """
import json, pickle, sys
with open(sys.argv[1], "rb") as f:
    obj = pickle.load(f)
namespace = {"obj": obj, "pickle": pickle}
exec(sys.argv[2], namespace)
print(json.dumps(namespace["out"], default=str))
"""


def in_fresh_process(tmp_path: Path, obj: Any, code: str, env: dict[str, str] | None = None) -> Any:
    """Unpickle ``obj`` in a new interpreter, run ``code`` (which sets ``out``), return ``out``."""
    data = tmp_path / f"pickled-{len(list(tmp_path.iterdir()))}.pkl"
    data.write_bytes(obj if isinstance(obj, bytes) else pickle.dumps(obj))
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(data), code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def dump(section: Section) -> str:
    """A section's JSON, comparable across processes."""
    return json.dumps(section.to_dict(), sort_keys=True, default=str)


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema(METAINFO)


def _workflow_entry() -> tuple[str, Path]:
    for path in FILES:
        raw = read_json(path)
        if raw.get("workflow"):
            return raw["metadata"]["entry_id"], path
    raise AssertionError("no sample archive with a workflow")


# ------------------------------------------------------------------ loaded archives


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name.split(".")[0])
def test_loaded_archive_round_trips(path: Path, schema: Schema, tmp_path: Path) -> None:
    archive = archivemap.load(path, schema)
    again = pickle.loads(pickle.dumps(archive))
    assert again is not archive
    assert type(again) is type(archive)
    assert again.to_dict() == archive.to_dict() == read_json(path)
    assert again.m_entry_id == archive.m_entry_id
    assert again.m_context.upload_id == archive.m_context.upload_id

    out = in_fresh_process(
        tmp_path, archive, "import json\nout = [json.dumps(obj.to_dict(), sort_keys=True, default=str), obj.m_entry_id]"
    )
    assert out == [dump(archive), archive.m_entry_id]


def test_section_deep_inside(schema: Schema, tmp_path: Path) -> None:
    archive = archivemap.load(FILES[0], schema)
    calc = archive.run[0].calculation[-1]
    value = calc.energy.total.value
    again = pickle.loads(pickle.dumps(calc))
    assert again.m_path() == calc.m_path() != "/"
    assert again.energy.total.value == value
    assert type(again) is type(calc)
    assert again.m_root.to_dict() == archive.to_dict()
    # its references resolve in the unpickled archive
    assert again.system_ref.m_path() == calc.system_ref.m_path()
    assert again.system_ref.m_root is again.m_root

    out = in_fresh_process(
        tmp_path,
        calc,
        "out = [obj.m_path(), obj.energy.total.value.to('eV').magnitude, type(obj).m_qualified_name, "
        "obj.system_ref.m_path()]",
    )
    assert out == [
        calc.m_path(),
        pytest.approx(value.to("eV").magnitude),
        type(calc).m_qualified_name,
        calc.system_ref.m_path(),
    ]


def test_sections_pickled_together_share_one_archive(schema: Schema) -> None:
    archive = archivemap.load(FILES[0], schema)
    calc = archive.run[0].calculation[0]
    system = archive.run[0].system[0]
    root, calc2, system2 = pickle.loads(pickle.dumps([archive, calc, system]))
    assert calc2.m_root is root and system2.m_root is root
    assert root.run[0].calculation[0] is calc2


def test_archive_with_assignments(schema: Schema, tmp_path: Path) -> None:
    archive = archivemap.load(FILES[0], schema)
    run = archive.run[0]
    run.program.name = "renamed"
    calc = run.calculation[0]
    calc.energy.total.value = calc.energy.total.value * 2
    added = type(calc)()  # a new, empty calculation, appended after loading
    run.calculation.append(added)
    expected = archive.to_dict()
    assert expected["run"][0]["program"]["name"] == "renamed"

    again = pickle.loads(pickle.dumps(archive))
    assert again.to_dict() == expected
    assert again.run[0].program.name == "renamed"
    added_again = pickle.loads(pickle.dumps(added))
    assert added_again.m_path() == added.m_path() == f"/run/0/calculation/{len(run.calculation) - 1}"

    out = in_fresh_process(tmp_path, archive, "import json\nout = json.dumps(obj.to_dict(), sort_keys=True, default=str)")
    assert out == dump(archive)


def test_section_built_in_python(schema: Schema, tmp_path: Path) -> None:
    archive = archivemap.load(FILES[0], schema)
    energy_cls = type(archive.run[0].calculation[0].energy)
    total_cls = type(archive.run[0].calculation[0].energy.total)
    value = archive.run[0].calculation[0].energy.total.value * 2  # with its unit
    built = energy_cls(total=total_cls(value=value))
    assert built.m_context is None
    again = pickle.loads(pickle.dumps((schema, built)))[1]
    assert type(again) is energy_cls
    assert again.to_dict() == built.to_dict()
    assert again.total.m_parent is again
    assert again.total.m_path() == built.total.m_path()

    out = in_fresh_process(tmp_path, (schema, built), "s, e = obj\nout = [e.to_dict(), e.total.m_parent is e]")
    assert out == [json.loads(json.dumps(built.to_dict(), default=str)), True]


@pytest.mark.shared
def test_shared_archive_with_the_2_0_schema(schema_2_0: Schema, tmp_path: Path) -> None:
    path = next(p for p in shared_archives() if p.name.startswith("vasp-si16"))
    archive = archivemap.load(path, schema_2_0)
    calc = archive.run[0].calculation[-1]
    value = calc.energy.total.value
    again = pickle.loads(pickle.dumps(calc))
    assert again.m_path() == calc.m_path()
    assert again.energy.total.value == value
    assert again.m_root.to_dict() == read_json(path)

    out = in_fresh_process(
        tmp_path,
        calc,
        "import json\nout = [obj.m_path(), obj.energy.total.value.to('eV').magnitude, "
        "json.dumps(obj.m_root.to_dict(), sort_keys=True, default=str)]",
    )
    assert out == [calc.m_path(), pytest.approx(value.to("eV").magnitude), dump(archive)]


# ------------------------------------------------------------------ schemas and classes


def test_schema_is_itself_after_a_round_trip(schema: Schema, tmp_path: Path) -> None:
    assert pickle.loads(pickle.dumps(schema)) is schema
    assert pickle.loads(pickle.dumps([schema, schema]))[0] is schema
    # a second schema of the same file stays a different object with its own classes
    other = Schema(METAINFO)
    assert pickle.loads(pickle.dumps(other)) is other
    assert other.root_class() is not schema.root_class()
    # a file schema pickles small: its path and sha256, not its definitions
    assert len(pickle.dumps(schema)) < 1000

    out = in_fresh_process(
        tmp_path,
        pickle.dumps(schema),
        "import pickle\nsame = pickle.loads(pickle.dumps(obj))\n"
        "out = [same is obj, obj.root_class().m_qualified_name, obj.identity, str(obj.environment.source)]",
    )
    assert out == [True, schema.root_class().m_qualified_name, schema.identity, str(METAINFO.resolve())]


def test_schema_from_a_dict_pickles_its_definitions(tmp_path: Path) -> None:
    schema = Schema(read_json(METAINFO))
    blob = pickle.dumps(schema)
    assert pickle.loads(blob) is schema
    archive = archivemap.load(FILES[0], schema)
    out = in_fresh_process(
        tmp_path,
        archive.run[0],
        "import pickle\nout = [obj.m_path(), type(obj).m_qualified_name, "
        "pickle.loads(pickle.dumps(obj.m_context.schema)) is obj.m_context.schema]",
    )
    assert out == ["/run/0", type(archive.run[0]).m_qualified_name, True]


def test_schema_file_that_changed_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "metainfo.json"
    shutil.copy(METAINFO, copy)
    schema = Schema(copy)
    blob = pickle.dumps(schema)
    code = (
        "import pickle\nfrom archivemap.errors import ArchivemapError\n"
        "try:\n    pickle.loads(obj)\n    out = 'loaded'\n"
        "except ArchivemapError as exc:\n    out = [type(exc).__name__, str(exc)]\n"
    )
    assert in_fresh_process(tmp_path, pickle.dumps(blob), code) == "loaded"
    copy.write_bytes(copy.read_bytes().replace(b"{", b"{ ", 1))
    name, message = in_fresh_process(tmp_path, pickle.dumps(blob), code)
    assert name == SchemaSourceChangedError.__name__
    assert str(copy) in message and "changed" in message
    copy.unlink()
    name, message = in_fresh_process(tmp_path, pickle.dumps(blob), code)
    assert name == SchemaSourceChangedError.__name__ and str(copy) in message


def test_runtime_class_by_name(schema: Schema, tmp_path: Path) -> None:
    archive = archivemap.load(FILES[0], schema)
    cls = type(archive.run[0].calculation[0])
    assert cls.__module__ == "archivemap.archive.runtime"
    assert pickle.loads(pickle.dumps(cls)) is cls
    assert pickle.loads(pickle.dumps(schema.root_class())) is schema.root_class()

    # elsewhere, with its schema in the same pickle
    out = in_fresh_process(
        tmp_path,
        (schema, cls),
        "s, c = obj\nout = [c.m_qualified_name, c is s.class_for_name(c.m_qualified_name), c.__module__]",
    )
    assert out == [cls.m_qualified_name, True, "archivemap.archive.runtime"]
    # alone: found through ARCHIVEMAP_METAINFO, or refused with a message that says so
    code = "out = [obj.m_qualified_name, obj.__name__]"
    assert in_fresh_process(tmp_path, cls, code, env={"ARCHIVEMAP_METAINFO": str(METAINFO)}) == [
        cls.m_qualified_name,
        cls.__name__,
    ]
    env = {k: v for k, v in os.environ.items() if k != "ARCHIVEMAP_METAINFO"}
    result = subprocess.run(
        [sys.executable, "-c", "import pickle, sys; pickle.loads(bytes.fromhex(sys.argv[1]))", pickle.dumps(cls).hex()],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
    )
    assert result.returncode != 0 and "ARCHIVEMAP_METAINFO" in result.stderr


# ------------------------------------------------------------------ sources


def test_directory_source_pickles_as_its_path(schema: Schema, tmp_path: Path) -> None:
    source = DirectorySource(SAMPLES / "archives", schema)
    archive = archivemap.load(FILES[0], schema, archives=source)
    again = pickle.loads(pickle.dumps(archive))
    assert again.m_context.source is source  # the same process: the same source
    other_id = [e for e in source.entry_ids() if e != archive.m_entry_id][0]
    out = in_fresh_process(
        tmp_path,
        archive,
        f"src = obj.m_context.source\nout = [str(src.directory), src.entry_ids(), "
        f"src.archive({other_id!r}).m_entry_id, src.schema is obj.m_context.schema]",
    )
    assert out == [str(source.directory), source.entry_ids(), other_id, True]


# ------------------------------------------------------------------ remote archives and clients


def test_remote_archive_fetches_after_unpickling(schema: Schema, tmp_path: Path) -> None:
    entry_id, path = _workflow_entry()
    raw = read_json(path)
    ref = raw["workflow"][0]["calculation_result_ref"]
    index = int(ref.rsplit("/", 1)[1])
    expected = raw["run"][0]["calculation"][index]["energy"]["total"]["value"]
    server = LocalServer(SAMPLES / "archives").start()
    try:
        archive = Client(server.url).archive(entry_id, required={"workflow": "*"}, schema=schema)
        blob = pickle.dumps(archive)
        assert "run" not in archive.to_dict()  # nothing beyond `required` went into the pickle

        again = pickle.loads(blob)
        server.clear_log()
        value = again.workflow[0].calculation_result_ref.energy.total.value
        assert value.to("J").magnitude == pytest.approx(expected)
        assert len(server.requests) == 1  # exactly the missing path, as before pickling

        out = in_fresh_process(
            tmp_path,
            blob,
            "target = obj.workflow[0].calculation_result_ref\n"
            "out = [target.m_path(), target.energy.total.value.to('J').magnitude, obj.m_context.fetcher.fetches]",
        )
        assert out == [f"/run/0/calculation/{index}", pytest.approx(expected), 1]
        # a repeating sub-section of a partial archive stays lazy
        calcs = pickle.loads(pickle.dumps(again.run[0].calculation))
        assert isinstance(calcs, PartialList) and len(calcs) == len(raw["run"][0]["calculation"])
    finally:
        server.stop()


def test_client_never_pickles_credentials_unless_asked(tmp_path: Path) -> None:
    token, password = "tok-s3cr3t-7f3a9c", "pw-s3cr3t-b81e"
    client = Client("http://127.0.0.1:9/api/v1", token=token, timeout=(1.5, 7.0), retries=2, max_concurrency=3)
    blob = pickle.dumps(client)
    assert token.encode() not in blob
    again = pickle.loads(blob)
    assert not again.has_auth
    assert (again.base_url, again.timeout, again.retry_policy.retries, again.max_concurrency) == (
        client.base_url, (1.5, 7.0), 2, 3,
    )
    with_login = Client("http://127.0.0.1:9/api/v1", username="ada", password=password)
    blob = pickle.dumps(with_login)
    assert password.encode() not in blob and b"ada" not in blob
    assert not pickle.loads(blob).has_auth
    with pytest.raises(TypeError):
        pickle.dumps(client._token)  # a bare secret refuses to be pickled

    opted = Client("http://127.0.0.1:9/api/v1", token=token, pickle_credentials=True)
    again = pickle.loads(pickle.dumps(opted))
    assert again.has_auth and again.pickle_credentials
    assert again._token is not None and again._token.reveal() == token
    assert token not in repr(again)


def test_opted_in_client_authenticates_in_a_fresh_process(tmp_path: Path) -> None:
    entry_id, _ = _workflow_entry()
    users = {"ada": "pw-ada-pickle-1"}
    with LocalServer(SAMPLES / "archives", users=users, require_auth=True) as server:
        code = (
            "from archivemap.errors import AuthenticationError\n"
            f"try:\n    out = obj.archive_raw({entry_id!r}, {{'metadata': '*'}})['metadata']['entry_id']\n"
            "except AuthenticationError:\n    out = 'refused'\n"
        )
        plain = Client(server.url, username="ada", password=users["ada"])
        assert in_fresh_process(tmp_path, plain, code) == "refused"
        opted = Client(server.url, username="ada", password=users["ada"], pickle_credentials=True)
        assert in_fresh_process(tmp_path, opted, code) == entry_id
