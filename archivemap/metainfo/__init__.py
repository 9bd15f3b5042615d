"""The metainfo layer: NOMAD's definition model and the field metadata of section classes.

Above the leaves, below everything that maps archives. The code generator shares exactly this
layer with the library.
"""

from archivemap.metainfo.environment import Environment
from archivemap.metainfo.exports import load_environment
from archivemap.metainfo.fields import META_KEY, FieldMeta, field_meta, fields_by_name, section_fields
from archivemap.metainfo.model import PackageDef, QuantityDef, SectionDef, SubSectionDef

__all__ = [
    "META_KEY",
    "Environment",
    "FieldMeta",
    "PackageDef",
    "QuantityDef",
    "SectionDef",
    "SubSectionDef",
    "field_meta",
    "fields_by_name",
    "load_environment",
    "section_fields",
]
