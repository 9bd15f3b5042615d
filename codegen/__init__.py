"""archivemap code generator: NOMAD metainfo definitions to Python modules of attrs classes.

Modules, one job each: :mod:`.layout` (which class goes where, names, bases, fields, import
cycles), :mod:`.hints` (type annotations), :mod:`.literals` (safe literals for untrusted
values), :mod:`.render` (source text), :mod:`.writer` (files and ``--check``), :mod:`.cli`
(:func:`generate` and the command line hooks).
"""

from .cli import GENERATOR_VERSION, add_arguments, generate, generate_files, run

__all__ = ["GENERATOR_VERSION", "add_arguments", "generate", "generate_files", "run"]
