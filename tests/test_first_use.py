"""What is made on first use (imports, tables of a class, locks) when threads and forked
processes are the first users.

numpy, pint and msgspec are imported by their first use (archivemap/_lazy.py): on Python 3.11,
lazy_loader's modules answered "module 'numpy' has no attribute 'float64'" to 7 of 8 threads
that loaded their first archive at once. Each check runs in a fresh interpreter, where nothing
is made yet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_fresh(code: str, *args: str) -> str:
    """The output of ``code`` run by a fresh interpreter in the repository (which must succeed)."""
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout

# Each check runs in a fresh interpreter: the libraries must not be imported yet.
_THREADS_FIRST = """
import sys, threading, warnings
warnings.simplefilter("ignore")
import archivemap
from archivemap._json import parse_json
from archivemap.archive.load import default_schema
schema = default_schema()
# (submodules: a lazy module may sit in sys.modules under its own name before its import)
assert not {"numpy.linalg", "pint.registry", "msgspec.json"} & set(sys.modules), "imported before first use"
barrier = threading.Barrier(8)
errors = []
def work(i):
    barrier.wait()
    try:
        assert parse_json(b'{"a": [1, 2]}') == {"a": [1, 2]}
        archive = archivemap.load("samples/archives/si2-single-point.archive.json", schema)
        energy = archive.workflow[0].calculation_result_ref.energy.total.value.to("eV")
        assert energy.magnitude < 0
        assert archive.run[0].system[0].atoms.positions.magnitude.shape[1] == 3
        archive.to_dict()
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(len(errors), errors[:1])
"""


def test_threads_may_be_the_first_users_of_the_deferred_libraries() -> None:
    for _ in range(3):
        out = run_fresh(_THREADS_FIRST)
        assert out.startswith("0 "), out


def test_the_cli_and_the_views_import_no_heavy_library_before_they_need_it() -> None:
    """`archivemap --help` (the CLI imports every layer) imports neither numpy, pint nor
    networkx, and no display-unit table is made (it would build pint's registry)."""
    code = (
        "import sys, archivemap.cli, archivemap.views.display, archivemap.graph\n"
        "from archivemap.views import units\n"
        "print(sorted({'numpy', 'pint', 'networkx', 'msgspec'} & set(sys.modules)), units._current)"
    )
    assert run_fresh(code).split() == ["[]", "None"]


# A thread holds archivemap's locks (the first import of pint, a class being built) while
# another thread forks, as a notebook with a background loader and a multiprocessing pool can:
# the child must not wait for a thread that does not exist there.
_FORK_WHILE_HELD = """
import os, sys, threading, time, warnings
warnings.simplefilter("ignore")
import archivemap
from archivemap import _lazy, units
from archivemap.archive.load import default_schema
schema = default_schema()
held, release = threading.Event(), threading.Event()
def hold():
    with _lazy._LOCK, units._lock, schema._lock:
        held.set()
        release.wait()
holder = threading.Thread(target=hold)
holder.start()
held.wait()
pid = os.fork()
if pid == 0:
    archive = archivemap.load("samples/archives/si2-single-point.archive.json", schema)
    energy = archive.workflow[0].calculation_result_ref.energy.total.value.to("eV")
    os._exit(0 if energy.magnitude < 0 else 3)
release.set()
holder.join()
deadline = time.monotonic() + 120
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("exit", os.waitstatus_to_exitcode(status))
        break
    if time.monotonic() > deadline:
        os.kill(pid, 9)
        print("hung")
        break
    time.sleep(0.05)
"""


def test_a_child_forked_while_a_thread_holds_the_locks_does_not_hang() -> None:
    assert run_fresh(_FORK_WHILE_HELD).split() == ["exit", "0"]


# Sixteen threads build the reference graph of the same new archive at once, with the
# interpreter switching threads every microsecond: each reads the field tables of classes
# nobody has read yet (metainfo/fields.py). Before, a thread could see the table by attribute
# and not yet the one by name: KeyError '_m_fields_by_name' in 10 runs of 15.
_TABLES = """
import sys, threading, warnings
warnings.simplefilter("ignore")
import archivemap
from archivemap.archive.load import default_schema
schema = default_schema()
path = sys.argv[1]
archives = [archivemap.load(path, schema) for _ in range(16)]
sys.setswitchinterval(1e-6)
barrier = threading.Barrier(16)
errors = []
def work(archive):
    barrier.wait()
    try:
        archivemap.reference_graph(archive)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=work, args=(a,)) for a in archives]
for t in threads: t.start()
for t in threads: t.join()
print(len(errors), errors[:1])
"""


def test_threads_may_be_the_first_to_read_a_class_field_tables(shared_data: Path) -> None:
    archive = shared_data / "archives" / "fhiaims-alas-geometry-optimization.parsed.archive.json"
    for _ in range(5):
        out = run_fresh(_TABLES, str(archive))
        assert out.startswith("0 "), out
