"""Write the small sample metainfo and archives in this folder (deterministic, stdlib only).

Usage::

    python samples/make_samples.py            # writes samples/metainfo.json, samples/archives/
    python samples/make_samples.py --check    # exit 1 if the files on disk differ

Everything here is hand-written for archivemap's tests and tutorials. Package, section and
quantity names mimic NOMAD's (``runschema.calculation.Calculation`` ...) so that archives that
look like real ones validate against it, but descriptions and values are our own. Values are
stored in the definition units, as NOMAD stores them (energies in joule, lengths in meter).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------------
# Definition helpers. Section references are written as qualified names here and turned into
# "/packages/i/section_definitions/j" paths once every section has its place.

_META_IDS = {
    name: hashlib.sha1(f"nomad.metainfo.metainfo.{name}".encode()).hexdigest()
    for name in ("Environment", "Package", "Section", "Quantity", "SubSection")
}


def _def_id(qualified_name: str) -> str:
    return hashlib.sha1(qualified_name.encode("utf-8")).hexdigest()


def Q(name: str, type_: Any, *, shape: list[Any] | None = None, unit: str | None = None,
      description: str | None = None, default: Any = None, virtual: bool = False,
      **extra: Any) -> dict[str, Any]:
    """A quantity. ``type_``: ``"str"``/``"int"``/... (python), ``"np:float64"`` (numpy),
    a list (enum), ``"ref:<qualified name>"``, ``"custom:<name>"``, ``"User"``/``"Author"``."""
    if isinstance(type_, list):
        type_dict: dict[str, Any] = {"type_kind": "enum", "type_data": sorted(type_)}
    elif type_.startswith("np:"):
        type_dict = {"type_kind": "numpy", "type_data": type_[3:]}
    elif type_.startswith("ref:"):
        type_dict = {"type_kind": "reference", "type_data": type_}  # resolved later
    elif type_.startswith("custom:"):
        type_dict = {"type_kind": "custom", "type_data": type_[7:]}
    elif type_ in ("User", "Author"):
        type_dict = {"type_kind": type_, "type_data": type_}
    else:
        type_dict = {"type_kind": "python", "type_data": type_}
    q: dict[str, Any] = {"m_def": "nomad.metainfo.metainfo.Quantity", "name": name}
    if description:
        q["description"] = description
    q["type"] = type_dict
    q["shape"] = shape or []
    if unit:
        q["unit"] = unit
    if default is not None:
        q["default"] = default
    if virtual:
        q["virtual"] = True
    q.update(extra)
    return q


def SS(name: str, target: str, *, repeats: bool = False, description: str | None = None,
       more: dict[str, Any] | None = None) -> dict[str, Any]:
    """A sub-section holding sections of the qualified name ``target``."""
    s: dict[str, Any] = {"m_def": "nomad.metainfo.metainfo.SubSection", "name": name}
    if description:
        s["description"] = description
    s["sub_section"] = "ref:" + target
    s["repeats"] = repeats
    if more:
        s["more"] = more
    return s


def S(name: str, description: str, *props: dict[str, Any], bases: tuple[str, ...] = (),
      extends: bool = False, inner: tuple[dict[str, Any], ...] = (),
      more: dict[str, Any] | None = None) -> dict[str, Any]:
    """A section with quantities and sub-sections in ``props`` (kept in the given order)."""
    s: dict[str, Any] = {"m_def": "nomad.metainfo.metainfo.Section", "name": name,
                         "description": description}
    if bases:
        s["base_sections"] = ["ref:" + b for b in bases]
    if extends:
        s["extends_base_section"] = True
    if more:
        s["more"] = more
    quantities = [p for p in props if p["m_def"].endswith("Quantity")]
    sub_sections = [p for p in props if p["m_def"].endswith("SubSection")]
    if quantities:
        s["quantities"] = quantities
    if sub_sections:
        s["sub_sections"] = sub_sections
    if inner:
        s["inner_section_definitions"] = list(inner)
    return s


ARCHIVE_SECTION = "nomad.datamodel.data.ArchiveSection"

PACKAGES: list[tuple[str, list[dict[str, Any]]]] = [
    ("nomad.datamodel.data", [
        S("ArchiveSection", "Base of every section that can appear in an archive."),
        S("EntryData", "Base of the user-defined data of an entry (the archive's `data`).",
          bases=(ARCHIVE_SECTION,)),
    ]),
    ("nomad.datamodel.datamodel", [
        S("EntryMetadata", "Bookkeeping about an entry: ids, files, parser, authors.",
          Q("upload_id", "str", description="The id of the upload this entry belongs to."),
          Q("entry_id", "str", description="A 28 character id of the entry."),
          Q("mainfile", "str", description="The path of the main file, relative to the upload."),
          Q("entry_name", "str", description="A human readable name of the entry."),
          Q("parser_name", "str", description="The parser that produced the archive."),
          Q("upload_create_time", "custom:nomad.metainfo.data_type.Datetime",
            description="When the upload was created (UTC)."),
          Q("main_author", "User", description="The user id of the entry's author."),
          Q("coauthors", "Author", shape=["0..*"], description="Further authors."),
          Q("published", "bool", default=False, description="Whether the entry is public."),
          Q("external_db_info", "custom:nomad.metainfo.data_type.JSON",
            description="Free-form information from an external database."),
          bases=(ARCHIVE_SECTION,)),
        S("EntryArchive", "The root section of every archive.",
          Q("entry_id", "str", virtual=True, description="Same as `metadata.entry_id`."),
          Q("processing_logs", "custom:nomad.metainfo.data_type.Any", shape=["0..*"],
            description="Log events written while the entry was processed."),
          SS("run", "runschema.run.Run", repeats=True),
          SS("workflow", "nomad.datamodel.metainfo.simulation.legacy_workflows.Workflow",
             repeats=True, description="The legacy workflow list of older archives."),
          SS("workflow2", "nomad.datamodel.metainfo.workflow.Workflow"),
          SS("data", "nomad.datamodel.data.EntryData"),
          SS("metadata", "nomad.datamodel.datamodel.EntryMetadata"),
          SS("results", "nomad.datamodel.results.Results"),
          bases=(ARCHIVE_SECTION,)),
    ]),
    ("runschema.run", [
        S("Program", "The code that ran the simulation.",
          Q("name", "str", description="Name of the code."),
          Q("version", "str", description="Version of the code."),
          bases=(ARCHIVE_SECTION,)),
        S("Run", "Everything one run of a simulation code produced.",
          SS("program", "runschema.run.Program"),
          SS("method", "runschema.method.Method", repeats=True),
          SS("system", "runschema.system.System", repeats=True),
          SS("calculation", "runschema.calculation.Calculation", repeats=True),
          bases=(ARCHIVE_SECTION,)),
    ]),
    ("runschema.method", [
        S("DFT", "Settings of a density-functional calculation.",
          Q("xc_functional_names", "str", shape=["*"],
            description="LibXC names of the exchange-correlation functionals."),
          Q("exact_exchange_mixing_factor", "np:float64",
            description="Fraction of exact exchange (0 for semi-local functionals)."),
          Q("smearing_width", "np:float64", unit="joule",
            description="Width of the occupation smearing."),
          bases=(ARCHIVE_SECTION,)),
        S("AtomParameters", "Parameters of one kind of atom (species).",
          Q("label", "str", description="Label of the species, used to name it in paths."),
          Q("atom_number", "np:int32", description="Atomic number."),
          Q("mass", "np:float64", unit="kilogram", description="Mass of the atom."),
          bases=(ARCHIVE_SECTION,)),
        S("Method", "The computational method of a calculation.",
          Q("label", "str"),
          Q("basis_set_type", ["plane waves", "numeric AOs", "gaussians"],
            description="The kind of basis set."),
          SS("dft", "runschema.method.DFT"),
          SS("atom_parameters", "runschema.method.AtomParameters", repeats=True,
             more={"label_quantity": "label"}),
          bases=(ARCHIVE_SECTION,)),
    ]),
    ("runschema.system", [
        S("Atoms", "Positions and kinds of the atoms of a system, and the cell.",
          Q("n_atoms", "int", description="Number of atoms."),
          Q("labels", "str", shape=["n_atoms"], description="Chemical symbols of the atoms."),
          Q("positions", "np:float64", shape=["n_atoms", 3], unit="meter",
            description="Cartesian positions of the atoms."),
          Q("lattice_vectors", "np:float64", shape=[3, 3], unit="meter",
            description="Cell vectors, one per row."),
          Q("periodic", "bool", shape=[3], default=[False, False, False],
            description="Periodicity along each cell vector."),
          bases=(ARCHIVE_SECTION,)),
        S("System", "The structure a calculation was done on.",
          Q("type", "str", description="Kind of system: bulk, surface, molecule ..."),
          Q("chemical_composition_hill", "str", description="Formula in Hill order."),
          Q("is_representative", "np:bool_",
            description="Whether this system stands for the whole entry."),
          SS("atoms", "runschema.system.Atoms"),
          bases=(ARCHIVE_SECTION,)),
    ]),
    ("runschema.calculation", [
        S("EnergyEntry", "One contribution to the energy.",
          Q("value", "np:float64", unit="joule", description="The energy."),
          Q("value_per_atom", "np:float64", unit="joule", description="The energy per atom."),
          bases=(ARCHIVE_SECTION,)),
        S("Energy", "Energies of a calculation.",
          Q("fermi", "np:float64", unit="joule", description="The Fermi energy."),
          SS("total", "runschema.calculation.EnergyEntry"),
          SS("free", "runschema.calculation.EnergyEntry"),
          SS("electronic", "runschema.calculation.EnergyEntry"),
          bases=(ARCHIVE_SECTION,)),
        S("ForcesEntry", "One contribution to the forces on the atoms.",
          Q("value", "np:float64", shape=["n_atoms", 3], unit="newton",
            description="Force on each atom."),
          bases=(ARCHIVE_SECTION,)),
        S("Forces", "Forces of a calculation.",
          SS("total", "runschema.calculation.ForcesEntry"),
          bases=(ARCHIVE_SECTION,)),
        S("BaseCalculation", "What single points and SCF steps have in common.",
          Q("system_ref", "ref:runschema.system.System",
            description="The system this calculation was done on."),
          Q("method_ref", "ref:runschema.method.Method",
            description="The method used."),
          SS("energy", "runschema.calculation.Energy"),
          SS("forces", "runschema.calculation.Forces"),
          bases=(ARCHIVE_SECTION,)),
        S("ScfIteration", "One self-consistent-field iteration.",
          Q("time_physical", "np:float64", unit="second"),
          bases=("runschema.calculation.BaseCalculation",)),
        S("Calculation", "One single-point calculation (one step of a workflow).",
          Q("time_physical", "np:float64", unit="second",
            description="Wall time since the start of the run."),
          Q("time_calculation", "np:float64", unit="second",
            description="Wall time of this calculation."),
          Q("n_scf_steps", "np:int32", description="Number of SCF iterations."),
          Q("dielectric_tensor", "np:complex128", shape=[3, 3],
            description="Complex dielectric tensor at zero frequency."),
          Q("density_charge_hdf5", "custom:nomad.datamodel.hdf5.HDF5Reference",
            description="Where the charge density is stored."),
          SS("scf_iteration", "runschema.calculation.ScfIteration", repeats=True),
          bases=("runschema.calculation.BaseCalculation",)),
    ]),
    ("nomad.datamodel.metainfo.simulation.legacy_workflows", [
        S("GeometryOptimization", "Settings and results of a geometry optimisation.",
          Q("convergence_tolerance_energy_difference", "np:float64", unit="joule"),
          Q("optimization_steps", "int", default=0),
          Q("energies", "np:float64", shape=["optimization_steps"], unit="joule",
            description="Total energy after each step."),
          bases=(ARCHIVE_SECTION,)),
        S("Workflow", "The legacy description of how calculations relate.",
          Q("type", ["geometry_optimization", "molecular_dynamics", "phonon", "single_point"],
            description="The kind of workflow."),
          Q("calculation_result_ref", "ref:runschema.calculation.Calculation",
            description="The calculation that holds the final result."),
          Q("calculations_ref", "ref:runschema.calculation.Calculation", shape=["*"],
            description="All calculations of the workflow, in order."),
          SS("geometry_optimization",
             "nomad.datamodel.metainfo.simulation.legacy_workflows.GeometryOptimization"),
          bases=(ARCHIVE_SECTION,)),
    ]),
    ("nomad.datamodel.metainfo.workflow", [
        S("Link", "A named input or output of a task.",
          Q("name", "str"),
          Q("section", f"ref:{ARCHIVE_SECTION}", description="The linked section."),
          bases=(ARCHIVE_SECTION,)),
        S("Task", "A step of a workflow with inputs and outputs.",
          Q("name", "str"),
          SS("inputs", "nomad.datamodel.metainfo.workflow.Link", repeats=True),
          SS("outputs", "nomad.datamodel.metainfo.workflow.Link", repeats=True),
          bases=(ARCHIVE_SECTION,)),
        S("Workflow", "A workflow: a task made of tasks.",
          SS("tasks", "nomad.datamodel.metainfo.workflow.Task", repeats=True),
          bases=("nomad.datamodel.metainfo.workflow.Task", "nomad.datamodel.data.EntryData")),
    ]),
    ("simulationworkflowschema.single_point", [
        S("SinglePoint", "A workflow of one calculation.",
          Q("n_scf_steps", "int", description="Number of SCF steps of the calculation."),
          bases=("nomad.datamodel.metainfo.workflow.Workflow",)),
    ]),
    ("simulationworkflowschema.geometry_optimization", [
        S("GeometryOptimization", "A workflow that relaxes a structure step by step.",
          Q("optimization_steps", "int"),
          Q("final_energy_difference", "np:float64", unit="joule"),
          bases=("nomad.datamodel.metainfo.workflow.Workflow",)),
    ]),
    ("nomad.datamodel.results", [
        S("Symmetry", "Symmetry of a material.",
          Q("space_group_symbol", "str"),
          Q("space_group_number", "np:int32"),
          Q("crystal_system", ["cubic", "hexagonal", "monoclinic", "orthorhombic",
                               "tetragonal", "triclinic", "trigonal"]),
          bases=(ARCHIVE_SECTION,)),
        S("Material", "What the entry is about, in normalised form.",
          Q("material_id", "str"),
          Q("elements", "str", shape=["0..*"], description="Chemical symbols, sorted."),
          Q("n_elements", "int"),
          Q("chemical_formula_hill", "str"),
          Q("chemical_formula_reduced", "str"),
          SS("symmetry", "nomad.datamodel.results.Symmetry"),
          bases=(ARCHIVE_SECTION,)),
        S("Properties", "Physical properties found in the entry.",
          Q("available_properties", "str", shape=["0..*"]),
          SS("geometry_optimization",
             "nomad.datamodel.results.Properties.GeometryOptimizationProperties"),
          bases=(ARCHIVE_SECTION,),
          inner=(S("GeometryOptimizationProperties", "Results of a geometry optimisation.",
                   Q("final_energy_difference", "np:float64", unit="joule"),
                   Q("energies", "np:float64", shape=["*"], unit="joule"),
                   bases=(ARCHIVE_SECTION,)),)),
        S("Results", "Summary of an entry used for search.",
          SS("material", "nomad.datamodel.results.Material"),
          SS("properties", "nomad.datamodel.results.Properties"),
          bases=(ARCHIVE_SECTION,)),
    ]),
    # A parser package that adds its own quantities to the shared sections, as NOMAD's
    # parser plugins do: the extension sections have no class of their own.
    ("electronicparsers.vasp.metainfo.vasp", [
        S("x_vasp_header", "Header lines of a VASP output file.",
          Q("x_vasp_version", "str"),
          Q("x_vasp_compile_date", "str"),
          bases=(ARCHIVE_SECTION,)),
        S("Method", "VASP settings of the method.",
          Q("x_vasp_incar_ENCUT", "np:float64", unit="joule",
            description="Plane-wave cutoff from the INCAR file."),
          Q("x_vasp_incar_PREC", "str"),
          bases=("runschema.method.Method",), extends=True),
        S("Run", "VASP-specific run information.",
          SS("x_vasp_header", "electronicparsers.vasp.metainfo.vasp.x_vasp_header"),
          bases=("runschema.run.Run",), extends=True),
    ]),
]


def build_metainfo() -> dict[str, Any]:
    """The Environment export, with every reference turned into a definition path."""
    paths: dict[str, str] = {}

    def place(section: dict[str, Any], qualified: str, path: str) -> None:
        paths[qualified] = path
        for k, inner in enumerate(section.get("inner_section_definitions", [])):
            place(inner, f"{qualified}.{inner['name']}",
                  f"{path}/inner_section_definitions/{k}")

    for i, (pkg_name, sections) in enumerate(PACKAGES):
        for j, section in enumerate(sections):
            place(section, f"{pkg_name}.{section['name']}", f"/packages/{i}/section_definitions/{j}")

    def ref(value: str) -> str:
        assert value.startswith("ref:"), value
        return paths[value[4:]]

    def finish(obj: dict[str, Any], qualified: str, index: int, parent_list: str) -> dict[str, Any]:
        # m_def_id and m_parent_sub_section are left out to keep the file small (< 50 KB
        # with the archives); readers must not depend on them.
        out: dict[str, Any] = {"m_def": obj["m_def"], "m_parent_index": index}
        for key, value in obj.items():
            if key == "m_def":
                continue
            if key == "base_sections":
                value = [ref(v) for v in value]
            elif key == "sub_section":
                value = ref(value)
            elif key == "type" and value["type_kind"] == "reference":
                value = {"type_kind": "reference", "type_data": ref(value["type_data"])}
            elif key in ("quantities", "sub_sections", "inner_section_definitions"):
                value = [finish(v, f"{qualified}.{v['name']}", k, key) for k, v in enumerate(value)]
            out[key] = value
        out["definition_id"] = _def_id(qualified)
        return out

    packages = []
    for i, (pkg_name, sections) in enumerate(PACKAGES):
        packages.append({
            "m_def": "nomad.metainfo.metainfo.Package",
            "m_parent_index": i,
            "name": pkg_name,
            "section_definitions": [
                finish(s, f"{pkg_name}.{s['name']}", j, "section_definitions")
                for j, s in enumerate(sections)
            ],
            "definition_id": _def_id(pkg_name),
        })
    return {"m_def": "nomad.datamodel.Environment", "m_def_id": _META_IDS["Environment"],
            "packages": packages}


# --------------------------------------------------------------------------------------------
# Archives

EV = 1.602176634e-19  # joule
ANGSTROM = 1e-10  # meter
EV_PER_ANGSTROM = EV / ANGSTROM  # newton
UPLOAD_ID = "archivemapSamples0001x"  # 22 characters, like NOMAD upload ids


def entry_id(upload_id: str, mainfile: str) -> str:
    """A 28 character URL-safe id (our own scheme; NOMAD's differs)."""
    digest = hashlib.sha256(f"{upload_id}/{mainfile}".encode()).digest()[:21]
    return base64.urlsafe_b64encode(digest).decode()


def r(x: float, digits: int = 12) -> float:
    """Round to ``digits`` significant digits, so the JSON stays short and stable."""
    return float(f"{x:.{digits - 1}e}")


def cell(a: float, b: float, c: float) -> list[list[float]]:
    return [[r(a), 0.0, 0.0], [0.0, r(b), 0.0], [0.0, 0.0, r(c)]]


def atoms(labels: list[str], frac: list[list[float]] | None, lattice: list[list[float]],
          cart: list[list[float]] | None = None) -> dict[str, Any]:
    if cart is None:
        assert frac is not None
        cart = [[r(sum(f[k] * lattice[k][d] for k in range(3))) for d in range(3)] for f in frac]
    return {"n_atoms": len(labels), "labels": labels, "positions": cart,
            "lattice_vectors": lattice, "periodic": [True, True, True]}


def energy(total_ev: float, n_atoms: int, fermi_ev: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"total": {"value": r(total_ev * EV),
                                     "value_per_atom": r(total_ev * EV / n_atoms)},
                           "free": {"value": r((total_ev - 0.0021) * EV)}}
    if fermi_ev is not None:
        out["fermi"] = r(fermi_ev * EV)
    return out


def metadata(mainfile: str, name: str, day: int) -> dict[str, Any]:
    return {"upload_id": UPLOAD_ID, "entry_id": entry_id(UPLOAD_ID, mainfile),
            "mainfile": mainfile, "entry_name": name, "parser_name": "parsers/vasp",
            "upload_create_time": f"2024-03-{day:02d}T09:15:00+00:00",
            "main_author": "7c1a3f0e-5b2d-4c8e-9f61-2a4d8e0b1c33", "published": True}


def vasp_method(encut_ev: float, species: list[tuple[str, int, float]]) -> dict[str, Any]:
    return {"label": "PBE", "basis_set_type": "plane waves",
            "dft": {"xc_functional_names": ["GGA_X_PBE", "GGA_C_PBE"],
                    "exact_exchange_mixing_factor": 0.0, "smearing_width": r(0.05 * EV)},
            "atom_parameters": [{"label": lab, "atom_number": z, "mass": r(m * 1.66053906660e-27)}
                                for lab, z, m in species],
            "x_vasp_incar_ENCUT": r(encut_ev * EV), "x_vasp_incar_PREC": "Accurate"}


def si2_single_point() -> dict[str, Any]:
    a = 5.431 * ANGSTROM
    lattice = [[0.0, r(a / 2), r(a / 2)], [r(a / 2), 0.0, r(a / 2)], [r(a / 2), r(a / 2), 0.0]]
    mainfile = "si2-bulk/vasprun.xml"
    return {
        "metadata": metadata(mainfile, "Si2 bulk single point", 4),
        "run": [{
            "program": {"name": "VASP", "version": "6.4.2"},
            "x_vasp_header": {"x_vasp_version": "vasp.6.4.2 20Jul23", "x_vasp_compile_date": "2023-07-20"},
            "method": [vasp_method(520.0, [("Si", 14, 28.085)])],
            "system": [{"type": "bulk", "chemical_composition_hill": "Si2", "is_representative": True,
                        "atoms": atoms(["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]], lattice)}],
            "calculation": [{
                "system_ref": "#/run/0/system/0", "method_ref": "#/run/0/method/0",
                "energy": energy(-10.8463, 2, fermi_ev=5.9172),
                "forces": {"total": {"value": [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]}},
                "time_calculation": 12.4, "time_physical": 13.1, "n_scf_steps": 11,
                "dielectric_tensor": {"re": [[13.1, 0.0, 0.0], [0.0, 13.1, 0.0], [0.0, 0.0, 13.1]],
                                      "im": [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]},
            }],
        }],
        "workflow": [{"type": "single_point", "calculation_result_ref": "#/run/0/calculation/0",
                      "calculations_ref": ["#/run/0/calculation/0"]}],
        "workflow2": {"m_def": "simulationworkflowschema.single_point.SinglePoint",
                      "name": "SinglePoint", "n_scf_steps": 11,
                      "inputs": [{"name": "Input structure", "section": "#/run/0/system/-1"},
                                 {"name": "Input method", "section": "#/run/0/method/0"}],
                      "outputs": [{"name": "Output calculation", "section": "#/run/0/calculation/0"}]},
        "results": {"material": {"material_id": "SiBulkDiamond0000000000000000",
                                 "elements": ["Si"], "n_elements": 1,
                                 "chemical_formula_hill": "Si2", "chemical_formula_reduced": "Si",
                                 "symmetry": {"space_group_symbol": "Fd-3m", "space_group_number": 227,
                                              "crystal_system": "cubic"}},
                    "properties": {"available_properties": ["dielectric_tensor"]}},
    }


def tio2_single_point() -> dict[str, Any]:
    a, c, u = 4.594 * ANGSTROM, 2.959 * ANGSTROM, 0.3048
    lattice = cell(a, a, c)
    frac = [[0, 0, 0], [0.5, 0.5, 0.5], [u, u, 0], [1 - u, 1 - u, 0],
            [0.5 + u, 0.5 - u, 0.5], [0.5 - u, 0.5 + u, 0.5]]
    f = 0.0123 * EV_PER_ANGSTROM
    forces = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [r(f), r(f), 0.0], [r(-f), r(-f), 0.0],
              [r(f), r(-f), 0.0], [r(-f), r(f), 0.0]]
    mainfile = "tio2-rutile/vasprun.xml"
    return {
        "metadata": metadata(mainfile, "TiO2 rutile single point", 5),
        "processing_logs": [{"event": "parser executed", "level": "INFO", "exec_time": "0.0312",
                             "logger": "nomad.processing"}],
        "run": [{
            "program": {"name": "VASP", "version": "6.4.2"},
            "method": [vasp_method(600.0, [("Ti", 22, 47.867), ("O", 8, 15.999)])],
            "system": [{"type": "bulk", "chemical_composition_hill": "O4Ti2", "is_representative": True,
                        "atoms": atoms(["Ti", "Ti", "O", "O", "O", "O"], frac, lattice)}],
            "calculation": [{
                "system_ref": "#/run/0/system/-1", "method_ref": "#/run/0/method/0",
                "energy": energy(-52.7981, 6, fermi_ev=4.3387),
                "forces": {"total": {"value": forces}},
                "time_calculation": 41.0, "time_physical": 42.7, "n_scf_steps": 17,
                "scf_iteration": [{"energy": {"total": {"value": r(e * EV)}}, "time_physical": t}
                                  for e, t in ((-52.5012, 14.2), (-52.7905, 28.5), (-52.7981, 42.6))],
            }],
        }],
        "workflow": [{"type": "single_point", "calculation_result_ref": "#/run/0/calculation/0"}],
        "workflow2": {"m_def": "simulationworkflowschema.single_point.SinglePoint",
                      "name": "SinglePoint", "n_scf_steps": 17,
                      "inputs": [{"name": "Input structure", "section": "/run/0/system/0"}],
                      "outputs": [{"name": "Output calculation", "section": "#/run/0/calculation/-1"}]},
        "results": {"material": {"material_id": "TiO2Rutile000000000000000000",
                                 "elements": ["O", "Ti"], "n_elements": 2,
                                 "chemical_formula_hill": "O2Ti", "chemical_formula_reduced": "O2Ti",
                                 "symmetry": {"space_group_symbol": "P4_2/mnm", "space_group_number": 136,
                                              "crystal_system": "tetragonal"}},
                    "properties": {"available_properties": ["forces"]}},
    }


def geometry_optimization() -> dict[str, Any]:
    """Three relaxation steps of a strained Si2 cell; the last step is the result."""
    steps = [(5.60, -10.7102, 0.081), (5.49, -10.8311, 0.023), (5.44, -10.8460, 0.002)]
    systems, calcs = [], []
    for k, (a_ang, e_ev, f_ev) in enumerate(steps):
        a = a_ang * ANGSTROM
        lattice = [[0.0, r(a / 2), r(a / 2)], [r(a / 2), 0.0, r(a / 2)], [r(a / 2), r(a / 2), 0.0]]
        systems.append({"chemical_composition_hill": "Si2",
                        "atoms": atoms(["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]], lattice)})
        f = f_ev * EV_PER_ANGSTROM
        calcs.append({
            # the first step uses the legacy reference form NOMAD writes after loading
            "system_ref": "/run/0/system/0" if k == 0 else f"#/run/0/system/{k}",
            "method_ref": "#/run/0/method/0",
            "energy": energy(e_ev, 2),
            "forces": {"total": {"value": [[r(f), r(f), r(f)], [r(-f), r(-f), r(-f)]]}},
            "time_physical": 10.0 * (k + 1),
        })
    systems[-1]["is_representative"] = True
    energies = [r(e * EV) for _, e, _ in steps]
    mainfile = "si2-relax/vasprun.xml"
    last = len(calcs) - 1
    return {
        "metadata": metadata(mainfile, "Si2 geometry optimisation", 6),
        "run": [{
            "program": {"name": "VASP", "version": "6.4.2"},
            "method": [vasp_method(520.0, [("Si", 14, 28.085)])],
            "system": systems,
            "calculation": calcs,
        }],
        "workflow": [{
            "type": "geometry_optimization",
            "calculation_result_ref": f"#/run/0/calculation/{last}",
            "calculations_ref": [f"#/run/0/calculation/{k}" for k in range(len(calcs))],
            "geometry_optimization": {"convergence_tolerance_energy_difference": r(1e-4 * EV),
                                      "optimization_steps": len(calcs), "energies": energies},
        }],
        "workflow2": {"m_def": "simulationworkflowschema.geometry_optimization.GeometryOptimization",
                      "name": "GeometryOptimization", "optimization_steps": len(calcs),
                      "final_energy_difference": r((steps[-1][1] - steps[-2][1]) * EV),
                      "inputs": [{"name": "Input structure", "section": "#/run/0/system/0"}],
                      "outputs": [{"name": "Output structure", "section": "#/run/0/system/-1"}],
                      "tasks": [{"name": f"Step {k}",
                                 "inputs": [{"name": "Input structure", "section": f"#/run/0/system/{k}"}],
                                 "outputs": [{"name": "Output calculation",
                                              "section": f"#/run/0/calculation/{k}"}]}
                                for k in range(len(calcs))]},
        "results": {"material": {"material_id": "SiBulkDiamond0000000000000000",
                                 "elements": ["Si"], "n_elements": 1,
                                 "chemical_formula_hill": "Si2", "chemical_formula_reduced": "Si"},
                    "properties": {"available_properties": ["geometry_optimization"],
                                   "geometry_optimization": {
                                       "final_energy_difference": r((steps[-1][1] - steps[-2][1]) * EV),
                                       "energies": energies}}},
    }


ARCHIVES = {
    "si2-single-point": si2_single_point,
    "tio2-rutile-single-point": tio2_single_point,
    "si2-geometry-optimization": geometry_optimization,
}


def _dump(data: Any, indent: int | None) -> str:
    if indent is None:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
    return json.dumps(data, ensure_ascii=False, indent=indent) + "\n"


def outputs() -> dict[Path, str]:
    """Every file this script writes, keyed by path."""
    files = {HERE / "metainfo.json": _dump(build_metainfo(), indent=None)}
    for name, make in ARCHIVES.items():
        files[HERE / "archives" / f"{name}.archive.json"] = _dump(make(), indent=None)
    return files


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in outputs().items():
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.relative_to(HERE).as_posix())
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {path.relative_to(HERE).as_posix()} ({len(text.encode())} bytes)")
    if stale:
        print("stale: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
