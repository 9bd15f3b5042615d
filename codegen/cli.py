"""``archivemap codegen METAINFO -o DIR [--check]``: the generator's entry points.

:func:`generate` is the API; :func:`add_arguments` and :func:`run` plug it into an
``argparse`` command line (``python -m archivemap_codegen`` uses them too).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import keyword
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from archivemap._version import __version__
from archivemap.metainfo.environment import Environment
from archivemap.metainfo.exports import load_environment
from archivemap.errors import CodegenError, DefinitionError

from .layout import plan
from .render import Source, render
from .writer import compare, write

__all__ = ["GENERATOR_VERSION", "add_arguments", "generate", "generate_files", "main", "run"]

#: The version written into every generated file's header and ``GENERATOR_VERSION``.
GENERATOR_VERSION = __version__


def _source(metainfo: Any) -> tuple[Any, Source]:
    """The loadable form of ``metainfo`` and its label and sha256."""
    if isinstance(metainfo, (str, Path)) and not str(metainfo).startswith(("http://", "https://")):
        path = Path(metainfo)
        data = path.read_bytes()
        return data, Source(path.name, hashlib.sha256(data).hexdigest(), GENERATOR_VERSION)
    if isinstance(metainfo, str):  # a URL: let the definition model fetch it
        env = load_environment(metainfo)
        name = PurePosixPath(urlparse(metainfo).path).name or "metainfo"
        return env, Source(name, _sha_of(env.raw), GENERATOR_VERSION)
    if isinstance(metainfo, bytes):
        return metainfo, Source("<bytes>", hashlib.sha256(metainfo).hexdigest(), GENERATOR_VERSION)
    if isinstance(metainfo, Environment):
        label = Path(metainfo.source).name if metainfo.source else "<environment>"
        return metainfo, Source(label, _sha_of(metainfo.raw), GENERATOR_VERSION)
    if isinstance(metainfo, Mapping):
        return metainfo, Source("<dict>", _sha_of(metainfo), GENERATOR_VERSION)
    raise CodegenError(f"cannot generate from a {type(metainfo).__name__}")


def _sha_of(data: Any) -> str:
    # ensure_ascii escapes lone surrogates too, which orjson refuses
    try:
        text = json.dumps(data, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise CodegenError(f"metainfo is not JSON data: {exc}") from None
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def generate_files(metainfo: Any) -> dict[str, str]:
    """The generated package as ``{relative file name: text}``, without touching the disk.

    Args:
        metainfo: a path to an export, a URL, JSON bytes, a dict or an ``Environment``.

    Raises:
        DefinitionError: the metainfo cannot be understood.
        CodegenError: the definitions cannot become safe Python.
    """
    loadable, source = _source(metainfo)
    env = load_environment(loadable)
    if not any(True for _ in env.all_sections()):
        raw = env.raw if isinstance(env.raw, Mapping) else {}
        looks = sorted(set(raw) & {"run", "metadata", "results", "workflow2", "data", "definitions"})
        what = f"an archive? it has {', '.join(looks)}" if looks else "no 'packages' with section definitions"
        raise CodegenError(f"{source.label} is not a metainfo export: it defines no sections ({what})")
    files = render(plan(env), source)
    for name, text in files.items():
        if name.endswith(".py"):
            try:  # never write a module that cannot even be compiled
                compile(text, name, "exec", dont_inherit=True)
            except (SyntaxError, ValueError) as exc:
                raise CodegenError(f"generated module {name} does not compile: {exc}") from None
    return files


def generate(
    metainfo_source: Any,
    out_dir: str | Path,
    package_name: str | None = None,
    check: bool = False,
) -> int:
    """Generate the package for ``metainfo_source`` into ``out_dir`` (or check it).

    Args:
        metainfo_source: a path to an export, a URL, JSON bytes, a dict or an ``Environment``.
        out_dir: the package directory; with ``package_name``, the directory that will hold
            the package directory ``package_name``.
        package_name: optional package (directory) name, a Python identifier.
        check: do not write; compare the directory with what would be written.

    Returns:
        0 when written (or up to date under ``check``), 1 when ``check`` found stale files
        (they are printed, one per line, to stderr).

    Raises:
        DefinitionError: the metainfo cannot be understood.
        CodegenError: the definitions cannot become safe Python, or a bad package name.
    """
    target = Path(out_dir)
    if package_name is not None:
        if not package_name.isidentifier() or keyword.iskeyword(package_name):
            raise CodegenError(f"package name {package_name!r} is not a Python identifier")
        target = target / package_name
    files = generate_files(metainfo_source)
    if check:
        stale = compare(files, target)
        for line in stale:
            print(f"stale: {target / line.split(': ', 1)[1]} ({line.split(':', 1)[0]})", file=sys.stderr)
        return 1 if stale else 0
    write(files, target)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the codegen arguments to an ``argparse`` parser (or sub-parser)."""
    parser.add_argument("metainfo", help="metainfo export (.json), GUI artifacts.js, or a NOMAD URL")
    parser.add_argument("-o", "--output", required=True, help="the generated package's directory")
    parser.add_argument("--package-name", default=None, help="create OUTPUT/PACKAGE_NAME instead")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and name the stale files if OUTPUT differs",
    )


def run(args: argparse.Namespace) -> int:
    """Run the command parsed by :func:`add_arguments`; returns the exit status."""
    try:
        status = generate(args.metainfo, args.output, args.package_name, check=args.check)
    except (DefinitionError, CodegenError, OSError) as exc:
        print(f"archivemap codegen: error: {exc}", file=sys.stderr)
        return 2
    if status == 0 and args.check:
        print(f"{args.output} is up to date")
    return status


def main(argv: list[str] | None = None) -> int:
    """``python -m archivemap_codegen METAINFO -o DIR [--check]``."""
    parser = argparse.ArgumentParser(prog="archivemap codegen", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
