"""The embedded NOMAD metainfo as the default schema, its disk cache, lazy definitions, and a
deployment's metainfo by URL (cached, revalidated, offline).

Every test runs with ``ARCHIVEMAP_CACHE_DIR`` in a temporary folder: the user's real cache is
never read or written.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import archivemap
from archivemap.cli import main
from archivemap.errors import DefinitionError
from archivemap.metainfo import cache, environment, exports, model
from archivemap.metainfo.default import DATA_FILE, NOMAD_VERSION, default_environment, default_export, default_sha256
from archivemap.metainfo.deployment import deployment_environment, forget_deployments

from .conftest import REPO, SAMPLES, SHARED

SI2 = SAMPLES / "archives" / "si2-single-point.archive.json"


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_ENV, str(where))
    monkeypatch.delenv("ARCHIVEMAP_METAINFO", raising=False)
    archivemap.set_default_schema(None)
    return where


def _cache_files(where: Path) -> list[Path]:
    folder = where / "metainfo"
    return sorted(folder.glob("*.marshal")) if folder.is_dir() else []


# ---------------------------------------------------------------- the default schema
def test_load_without_schema_uses_the_embedded_nomad_metainfo(tmp_path: Path) -> None:
    archive = archivemap.load(SI2)
    energy = archive.workflow[0].calculation_result_ref.energy.total.value.to("eV")
    assert energy.magnitude == pytest.approx(-10.8463, abs=1e-3)
    assert NOMAD_VERSION in (default_environment().source or "")
    assert DATA_FILE.stat().st_size < 2_000_000  # compressed package data, not the 8.4 MB export


def test_explicit_set_and_env_schemas_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    samples = archivemap.Schema(SAMPLES / "metainfo.json")
    load_module = importlib.import_module("archivemap.archive.load")  # the module, not the function
    default = load_module.default_schema()
    assert default.environment is default_environment()

    def schema_of(**kw: object) -> Any:
        return load_module._pick_schema(kw.get("schema"))  # type: ignore[no-any-return]  # noqa: SLF001

    assert schema_of() is default
    assert schema_of(schema=samples) is samples
    archivemap.set_default_schema(samples)
    assert schema_of() is samples
    archivemap.set_default_schema(None)
    monkeypatch.setenv("ARCHIVEMAP_METAINFO", str(SAMPLES / "metainfo.json"))
    assert schema_of().environment.source == str(SAMPLES / "metainfo.json")


def test_cli_show_without_metainfo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # outside samples/, so the samples' own metainfo is not picked: the embedded one is
    path = tmp_path / "si2.archive.json"
    shutil.copy(SI2, path)
    assert main(["show", str(path), "run[0].calculation[-1].energy.total.value", "--unit", "eV"]) == 0
    assert "-10.84" in capsys.readouterr().out


# ---------------------------------------------------------------- the disk cache
def test_cache_is_written_once_and_read_back(tmp_cache: Path) -> None:
    first = default_export()
    files = _cache_files(tmp_cache)
    assert len(files) == 1 and default_sha256()[:40] in files[0].name
    stamp = files[0].stat().st_mtime_ns
    again = cache.load_parsed("embedded", default_sha256())
    assert again is not None and environment.is_packed_export(again)
    assert environment.unpack_export(again) == first
    assert default_export() == first
    assert files[0].stat().st_mtime_ns == stamp  # read, not rewritten


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_a_corrupt_cache_file_is_ignored_and_rebuilt(tmp_cache: Path, damage: str) -> None:
    first = default_export()
    (file,) = _cache_files(tmp_cache)
    blob = file.read_bytes()
    if damage == "truncate":
        file.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        file.write_bytes(blob[:1000] + bytes([blob[1000] ^ 0xFF]) + blob[1001:])
    elif damage == "garbage":
        file.write_bytes(b"not a cache file at all")
    else:
        file.write_bytes(b"")
    assert cache.load_parsed("embedded", default_sha256()) is None
    assert default_export() == first  # parsed again ...
    rebuilt = cache.load_parsed("embedded", default_sha256())  # ... and the file rebuilt
    assert rebuilt is not None and environment.unpack_export(rebuilt) == first


def test_concurrent_writers_leave_one_whole_file(tmp_cache: Path) -> None:
    data = {"packages": [{"name": f"p{i}", "section_definitions": [{"name": "S" * 1000}] * 50} for i in range(50)]}
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(20):
                cache.store_parsed("test", "ab" * 32, data)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cache.load_parsed("test", "ab" * 32) == data
    assert not list((tmp_cache / "metainfo").glob("*.tmp"))  # no temporary files left behind
    assert cache.clear_cache() >= 1 and _cache_files(tmp_cache) == []


def test_an_unwritable_cache_only_costs_a_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv(cache.CACHE_ENV, str(blocker / "below-a-file"))
    assert cache.store_parsed("embedded", "00" * 32, {"packages": []}) is None
    assert cache.load_parsed("embedded", "00" * 32) is None


def test_a_second_process_reads_the_cache(tmp_cache: Path) -> None:
    code = (
        "import archivemap, time\n"
        "from archivemap.metainfo import cache, default\n"
        "hit = cache.load_parsed('embedded', default.default_sha256()) is not None\n"
        "a = archivemap.load(%r)\n"
        "print(hit, a.workflow[0].calculation_result_ref.energy.total.value.to('eV').magnitude)\n" % str(SI2)
    )
    env = {**os.environ, cache.CACHE_ENV: str(tmp_cache)}
    env.pop("ARCHIVEMAP_METAINFO", None)
    run = lambda: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=True
    ).stdout.split()
    first, second = run(), run()
    assert first[0] == "False" and second[0] == "True"
    assert first[1] == second[1]


# ---------------------------------------------------------------- lazy definitions
def test_definitions_are_built_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    original = model.QuantityDef

    class Counting(original):  # type: ignore[misc,valid-type]
        __slots__ = ()

        def __init__(self, raw, path, section):  # type: ignore[no-untyped-def]
            built.append(path)
            super().__init__(raw, path, section)

    monkeypatch.setattr(model, "QuantityDef", Counting)
    env = exports.load_environment({"packages": [{"name": "p", "section_definitions": [
        {"name": "A", "quantities": [{"name": "x", "definition_id": "c" * 40}, {"name": "y"}]},
        {"name": "B", "quantities": [{"name": "z"}], "base_sections": ["/packages/0/section_definitions/0"]},
    ]}]})
    assert built == []
    assert env.by_definition_id("c" * 40) is env.section("p.A").quantities[0]
    assert built == ["/packages/0/section_definitions/0/quantities/0", "/packages/0/section_definitions/0/quantities/1"]
    assert set(env.section("p.B").all_properties) == {"x", "y", "z"}
    assert env.resolve("/packages/0/section_definitions/1/quantities/0").name == "z"
    assert len(built) == 3


@pytest.mark.skipif(not SHARED.is_dir(), reason="real NOMAD data not found")
def test_the_embedded_export_is_the_shared_2_0_export() -> None:
    raw = (SHARED / "metainfo" / "nomad-2.0.0-metainfo.json").read_bytes()
    assert default_export() == json.loads(raw)


# ---------------------------------------------------------------- a deployment by URL
class _Deployment:
    """A local server for ``<root>/gui/artifacts.js`` with ETag / Last-Modified, counting requests."""

    def __init__(self, root: Path) -> None:
        self.body = b""
        self.requests: list[tuple[str, int]] = []
        self.set(json.loads((SAMPLES / "metainfo.json").read_text()))
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                # each request is counted before its answer goes out: the client may look at
                # the count as soon as it has the answer
                if self.path != "/prod/gui/artifacts.js":
                    owner.requests.append((self.path, 404))
                    self.send_response(404)
                    self.end_headers()
                    return
                etag = '"' + hashlib.sha256(owner.body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    owner.requests.append((self.path, 304))
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                owner.requests.append((self.path, 200))
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", "Sat, 28 Nov 2026 10:00:00 GMT")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/prod/api/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, metainfo: dict[str, object]) -> None:
        self.body = ("window.nomadArtifacts = " + json.dumps({"metainfo": metainfo, "unitList": []}) + ";").encode()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[_Deployment]:
    forget_deployments()
    server = _Deployment(tmp_path)
    yield server
    server.stop()
    forget_deployments()


def test_deployment_metainfo_is_downloaded_once_and_revalidated(deployment: _Deployment) -> None:
    env = deployment_environment(deployment.url)
    assert env.section("runschema.calculation.Calculation").name == "Calculation"
    assert deployment.requests == [("/prod/gui/artifacts.js", 200)]
    assert deployment_environment(deployment.url) is env  # once per process: no request
    assert len(deployment.requests) == 1

    forget_deployments()  # as a new process would: one conditional GET, answered 304
    again = deployment_environment(deployment.url)
    assert deployment.requests[-1] == ("/prod/gui/artifacts.js", 304)
    assert again.section("runschema.calculation.Calculation").name == "Calculation"

    forget_deployments()  # the deployment changed: downloaded and parsed again
    deployment.set({"packages": [{"name": "p", "section_definitions": [{"name": "New"}]}]})
    changed = deployment_environment(deployment.url)
    assert deployment.requests[-1] == ("/prod/gui/artifacts.js", 200)
    assert changed.section("p.New").name == "New"


def test_deployment_metainfo_is_usable_offline(deployment: _Deployment) -> None:
    with pytest.raises(DefinitionError, match="offline"):
        deployment_environment(deployment.url, offline=True)
    deployment_environment(deployment.url)
    deployment.stop()  # the server is gone
    forget_deployments()
    env = deployment_environment(deployment.url)
    assert env.section("runschema.calculation.Calculation").name == "Calculation"
    forget_deployments()
    assert deployment_environment(deployment.url, offline=True).section("runschema.run.Run").name == "Run"


def test_deployment_session_get_and_errors(deployment: _Deployment) -> None:
    import requests

    calls: list[str] = []

    def get(url: str, **kw: object) -> object:
        calls.append(url)
        return requests.get(url, **kw)  # type: ignore[arg-type]

    deployment_environment(deployment.url, session_get=get)
    assert calls == [deployment.url.replace("/api/v1", "/gui/artifacts.js")]
    forget_deployments()
    with pytest.raises(DefinitionError, match="HTTP 404"):
        deployment_environment(deployment.url.replace("/prod/", "/other/"))
