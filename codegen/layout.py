"""Which class goes in which module, under which name, on which Python base, with which fields.

The plan is made once per environment and everything the renderer writes is read off it, in
a deterministic order (export order of packages and sections; no set or dict iteration order
leaks into the output).

Rules:

* **One module per NOMAD package**, named by :func:`archivemap.naming.module_name`. A module
  name taken by an earlier package (also case-insensitively, for case-insensitive file
  systems) or by a name of the root ``__init__`` gets ``_<8 hex of sha256(package name)>``.
* **Class names** are :func:`archivemap.naming.class_name` of the section name. Names that
  would shadow what a module imports (``Any``, ``str``, ``quantity`` ...) or that an earlier
  section of the same module already took get ``_<8 hex of sha256(qualified name)>``. The
  same section name in different packages is disambiguated by the module alone.
* **Inner sections** become module-level classes named ``<Outer class>_<Inner>`` (e.g.
  ``Properties_GeometryOptimizationProperties``); their qualified name stays
  ``pkg.Outer.Inner``.
* **Python base**: only the *first* base section (ignoring extension sections, like the
  runtime) becomes the Python base class; attrs classes with slots cannot have several
  laid-out bases. Properties of further bases and of extensions are declared directly, so
  each class declares ``all_properties`` minus what its Python base already declares with an
  equal :class:`~archivemap.metainfo.fields.FieldMeta`. ``isinstance`` therefore follows the first base
  only; ``SectionDef.is_a`` answers for all of them.
* **Extension sections** (``extends_base_section``) get no class: their qualified name is an
  alias of the section they extend, whose class carries their properties.
* **Import cycles**: modules import their base classes for real and everything else only
  under ``TYPE_CHECKING``. Base classes form a DAG of classes, and classes are ordered by it
  within a module, but two modules can still need base classes from each other. The classes
  of every such strongly connected group of modules are defined together in one private
  module ``_cycle_<hash>``, in base order, and re-exported by the package modules, so any
  module can be imported first. (The real NOMAD exports have no such group.)
"""

from __future__ import annotations

import hashlib
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from archivemap.metainfo.environment import Environment
from archivemap.metainfo.model import PackageDef, SectionDef
from archivemap.errors import CodegenError
from archivemap.metainfo.fields import FieldMeta, property_meta
from archivemap.naming import class_name, module_name, python_name

from .hints import Names, annotation

__all__ = ["ClassPlan", "FieldPlan", "ModulePlan", "Plan", "plan"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")  # \Z, not $: "name\n" is no identifier

#: Names the generated modules import or use at module level; no class may take them.
MODULE_NAMES = frozenset(
    {
        "annotations",
        "TYPE_CHECKING",
        "Any",
        "ClassVar",
        "attrs",
        "np",
        "pint",
        "datetime",
        "builtins",
        "quantity",
        "sub_section",
        "Section",
        "str",
        "int",
        "float",
        "bool",
        "list",
        "dict",
        "bytes",
        "object",
        "type",
    }
)

#: Names of the package root; no module may take them (lower-cased comparison).
ROOT_NAMES = frozenset(
    {
        "aliases",
        "annotations",
        "any",
        "classes",
        "definition_ids",
        "generator_version",
        "get_class",
        "importlib",
        "modules",
        "source",
        "source_sha256",
        "unknowndefinitionerror",
    }
)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


@dataclass
class FieldPlan:
    """One declared field.

    Attributes:
        attribute: the Python attribute name.
        meta: the field's metadata, equal to what the runtime computes.
        canonical: the annotation with builtins unaliased and classes as ``§qualified§``,
            used to compare with the base class's declaration.
        ignore: the mypy error code to silence on this line (an override with an
            incompatible type), or ``None``.
    """

    attribute: str
    meta: FieldMeta
    canonical: str
    ignore: str | None = None


@dataclass
class ClassPlan:
    """One generated class."""

    section: SectionDef
    index: int
    module: ModulePlan
    name: str
    base: ClassPlan | None = None
    fields: list[FieldPlan] = field(default_factory=list)
    #: attribute → (meta, canonical annotation) of every field, inherited ones included
    effective: dict[str, tuple[FieldMeta, str]] = field(default_factory=dict)
    impl_module: str = ""
    impl_name: str = ""

    @property
    def qualified_name(self) -> str:
        return self.section.qualified_name


@dataclass
class ModulePlan:
    """One generated module: the classes of one NOMAD package."""

    name: str
    package: PackageDef
    classes: list[ClassPlan] = field(default_factory=list)
    #: set when the classes are defined in a private ``_cycle_*`` module
    cycle: str | None = None


@dataclass
class Plan:
    """Everything the renderer needs, in output order."""

    environment: Environment
    modules: list[ModulePlan]
    classes: dict[str, ClassPlan]  # qualified name → class (first definition wins)
    aliases: dict[str, str]  # alias qualified name → qualified name
    definition_ids: dict[str, str]  # definition id → qualified name
    cycles: dict[str, list[ClassPlan]]  # private module name → classes in definition order
    by_section: dict[int, ClassPlan]

    def target(self, qualified_name: str) -> ClassPlan | None:
        """The class for a qualified name, following aliases (extensions)."""
        seen = 0
        while qualified_name not in self.classes and qualified_name in self.aliases and seen < 64:
            qualified_name = self.aliases[qualified_name]
            seen += 1
        return self.classes.get(qualified_name)


def _check_identifier(name: str, what: str, where: str) -> str:
    if not _IDENT.match(name) or keyword.iskeyword(name):
        raise CodegenError(f"{what} {name!r} is not a safe identifier (at {where})")
    return name


def _module_names(packages: list[PackageDef]) -> list[str]:
    names: list[str] = []
    taken: set[str] = set()
    for i, pkg in enumerate(packages):
        name = module_name(pkg.name)
        if name.lower() in taken or name.lower() in ROOT_NAMES:
            name = f"{module_name(pkg.name)}_{_digest(pkg.name)}"
        if name.lower() in taken:
            name = f"{module_name(pkg.name)}_{_digest(f'{i}:{pkg.name}')}"
        _check_identifier(name, "module name", pkg.path)
        taken.add(name.lower())
        names.append(name)
    return names


def _extension_target(section: SectionDef) -> SectionDef:
    seen = 0
    while section.extends_base_section and section.base_sections and seen < 64:
        section = section.base_sections[0]
        seen += 1
    return section


def _python_base(section: SectionDef) -> SectionDef | None:
    bases = [b for b in section.base_sections if not b.extends_base_section]
    return bases[0] if bases else None


def plan(env: Environment) -> Plan:
    """Lay out the classes of an environment.

    Raises:
        CodegenError: names that cannot become safe Python, clashing attributes.
        DefinitionError: broken definitions (unknown bases, cyclic inheritance ...).
    """
    packages = list(env.packages)
    modules = [ModulePlan(name, pkg) for name, pkg in zip(_module_names(packages), packages)]
    classes: dict[str, ClassPlan] = {}
    by_section: dict[int, ClassPlan] = {}
    aliases: dict[str, str] = {}
    definition_ids: dict[str, str] = {}
    extensions: list[SectionDef] = []
    order = 0

    # 1. names
    for module in modules:
        taken = set(MODULE_NAMES)
        for section in module.package.all_sections():
            if section.definition_id:
                definition_ids.setdefault(section.definition_id, section.qualified_name)
            if section.extends_base_section:
                extensions.append(section)
                continue
            if section.outer is not None and id(section.outer) in by_section:
                name = f"{by_section[id(section.outer)].name}_{class_name(section.name)}"
            else:
                name = class_name(section.name)
            if name in taken:
                name = f"{name}_{_digest(section.qualified_name)}"
            if name in taken:
                name = f"{name}_{_digest(section.path)}"
            _check_identifier(name, "class name", section.path)
            taken.add(name)
            cp = ClassPlan(section, order, module, name, impl_module=module.name, impl_name=name)
            order += 1
            module.classes.append(cp)
            by_section[id(section)] = cp
            classes.setdefault(section.qualified_name, cp)

    for ext in extensions:
        target = _extension_target(ext)
        if ext.qualified_name not in classes:
            aliases.setdefault(ext.qualified_name, target.qualified_name)
    for pkg in packages:
        for alias in pkg.aliases:
            for section in pkg.all_sections():
                rest = section.qualified_name[len(pkg.name) :]
                aliased = alias + rest
                if aliased not in classes and aliased != section.qualified_name:
                    aliases.setdefault(aliased, _extension_target(section).qualified_name)

    result = Plan(env, modules, classes, aliases, definition_ids, {}, by_section)

    # 2. bases and fields, bases first
    done: set[int] = set()

    def build(cp: ClassPlan) -> None:
        if id(cp) in done:
            return
        cp.section.all_base_sections  # raises CyclicDefinitionError before we recurse
        base_def = _python_base(cp.section)
        inherited: dict[str, tuple[FieldMeta, str]] = {}
        if base_def is not None:
            base_cp = by_section.get(id(_extension_target(base_def)))
            if base_cp is None:
                raise CodegenError(
                    f"base section {base_def.qualified_name} of {cp.qualified_name} has no "
                    f"class (at {cp.section.path})"
                )
            build(base_cp)
            cp.base = base_cp
            inherited = base_cp.effective
        effective = dict(inherited)
        used = set(inherited)
        for name, prop in cp.section.all_properties.items():
            attr = python_name(name)
            _check_identifier(attr, "attribute name", getattr(prop, "path", cp.section.path))
            fm = property_meta(prop, attr)  # the runtime's, with the same fallback
            if attr in inherited and inherited[attr][0] == fm:
                continue
            if attr in used and attr not in inherited:
                raise CodegenError(
                    f"properties of {cp.qualified_name} map to one attribute {attr!r} "
                    f"(at {cp.section.path})"
                )
            used.add(attr)
            canonical = annotation(fm, _canonical_target(result), Names())
            ignore = None
            if attr in inherited and not _compatible(result, canonical, inherited[attr][1]):
                ignore = "assignment"
            cp.fields.append(FieldPlan(attr, fm, canonical, ignore))
            effective[attr] = (fm, canonical)
        cp.effective = effective
        done.add(id(cp))

    for module in modules:
        for cp in module.classes:
            build(cp)

    # 3. order within modules, and cycles between modules
    for module in modules:
        module.classes = _base_order(module.classes)
    _merge_cycles(result)
    return result


def _canonical_target(p: Plan):  # type: ignore[no-untyped-def]
    def target(qualified_name: str) -> str | None:
        cp = p.target(qualified_name)
        return None if cp is None else f"§{cp.qualified_name}§"

    return target


_OPTIONAL_CLASS = re.compile(r"^§(.+)§ \| None$")


def _compatible(p: Plan, sub: str, base: str) -> bool:
    """Whether mypy accepts ``sub`` as an override of an attribute declared ``base``."""
    if sub == base or sub == "Any" or base == "Any":
        return True
    m_sub, m_base = _OPTIONAL_CLASS.match(sub), _OPTIONAL_CLASS.match(base)
    if m_sub and m_base:  # Optional is covariant; list is not
        # follow the Python bases through the definitions: the plans of the target classes
        # may not have been built yet
        sub_cp, base_cp = p.classes.get(m_sub.group(1)), p.classes.get(m_base.group(1))
        section = sub_cp.section if sub_cp is not None else None
        for _ in range(10_000):
            if section is None or base_cp is None:
                break
            if section is base_cp.section:
                return True
            base_def = _python_base(section)
            section = _extension_target(base_def) if base_def is not None else None
    return False


def _base_order(items: list[ClassPlan]) -> list[ClassPlan]:
    """Definition order, except that a class comes after its base (stable topological sort)."""
    in_group = {id(cp) for cp in items}
    placed: set[int] = set()
    out: list[ClassPlan] = []

    def place(cp: ClassPlan) -> None:
        chain = []
        node: ClassPlan | None = cp
        while node is not None and id(node) in in_group and id(node) not in placed:
            chain.append(node)
            node = node.base
        for item in reversed(chain):
            placed.add(id(item))
            out.append(item)

    for cp in sorted(items, key=lambda c: c.index):
        place(cp)
    return out


def _sccs(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components (iterative Tarjan), each in ``nodes`` order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            succ = edges.get(v, [])
            if i < len(succ):
                work.append((v, i + 1))
                w = succ[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                result.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    position = {n: k for k, n in enumerate(nodes)}
    return [sorted(c, key=position.__getitem__) for c in result]


def _merge_cycles(p: Plan) -> None:
    names = [m.name for m in p.modules]
    edges: dict[str, list[str]] = {}
    for m in p.modules:
        targets: list[str] = []
        for cp in m.classes:
            if cp.base is not None and cp.base.module is not m and cp.base.module.name not in targets:
                targets.append(cp.base.module.name)
        edges[m.name] = targets
    by_name = {m.name: m for m in p.modules}
    taken = {n.lower() for n in names}
    for comp in _sccs(names, edges):
        if len(comp) < 2:
            continue
        cycle = f"_cycle_{_digest(chr(0).join(comp))}"
        while cycle.lower() in taken:
            cycle += "_"
        taken.add(cycle.lower())
        members: list[ClassPlan] = []
        used: set[str] = set(MODULE_NAMES)
        for mod_name in comp:
            module = by_name[mod_name]
            module.cycle = cycle
            for cp in module.classes:
                impl = f"{mod_name}_{cp.name}"
                while impl in used:
                    impl += "_"
                used.add(impl)
                cp.impl_module, cp.impl_name = cycle, impl
                members.append(cp)
        p.cycles[cycle] = _base_order(members)


def iter_classes(p: Plan) -> Iterable[ClassPlan]:
    """Every class, module by module, in output order."""
    for module in p.modules:
        yield from module.classes
