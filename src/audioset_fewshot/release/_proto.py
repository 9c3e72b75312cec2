"""TensorFlow's ``Example`` / ``SequenceExample`` messages, built at run time.

The messages of ``example.proto`` (beside this file) are described with
``descriptor_pb2`` and added to a *private* descriptor pool, so no protoc
output has to match the installed protobuf version, and another copy of
``tensorflow.SequenceExample`` in the default pool (the ``tfrecord`` package
registers one) never clashes with ours.  The wire format is what counts: field
numbers and types are TensorFlow's.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # type: ignore[import-untyped]

PACKAGE = "tensorflow"
FILE_NAME = "audioset_fewshot/release/example.proto"

_F = descriptor_pb2.FieldDescriptorProto


def _field(
    msg: Any, name: str, number: int, ftype: int, *, repeated: bool = False, type_name: str | None = None, packed: bool = False, oneof: int | None = None
) -> None:
    f = msg.field.add()
    f.name = name
    f.number = number
    f.type = ftype
    f.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name is not None:
        f.type_name = type_name
    if packed:
        f.options.packed = True
    if oneof is not None:
        f.oneof_index = oneof
    f.json_name = "".join(p if i == 0 else p.capitalize() for i, p in enumerate(name.split("_")))


def _map_entry(msg: Any, entry: str, value_type: str) -> None:
    e = msg.nested_type.add()
    e.name = entry
    e.options.map_entry = True
    _field(e, "key", 1, _F.TYPE_STRING)
    _field(e, "value", 2, _F.TYPE_MESSAGE, type_name=value_type)


def file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto of the messages in ``example.proto``."""
    fd = descriptor_pb2.FileDescriptorProto(name=FILE_NAME, package=PACKAGE, syntax="proto3")
    t = f".{PACKAGE}."
    for name, ftype, packed in (("BytesList", _F.TYPE_BYTES, False), ("FloatList", _F.TYPE_FLOAT, True), ("Int64List", _F.TYPE_INT64, True)):
        m = fd.message_type.add(name=name)
        _field(m, "value", 1, ftype, repeated=True, packed=packed)
    m = fd.message_type.add(name="Feature")
    m.oneof_decl.add(name="kind")
    _field(m, "bytes_list", 1, _F.TYPE_MESSAGE, type_name=t + "BytesList", oneof=0)
    _field(m, "float_list", 2, _F.TYPE_MESSAGE, type_name=t + "FloatList", oneof=0)
    _field(m, "int64_list", 3, _F.TYPE_MESSAGE, type_name=t + "Int64List", oneof=0)
    m = fd.message_type.add(name="Features")
    _map_entry(m, "FeatureEntry", t + "Feature")
    _field(m, "feature", 1, _F.TYPE_MESSAGE, repeated=True, type_name=t + "Features.FeatureEntry")
    m = fd.message_type.add(name="FeatureList")
    _field(m, "feature", 1, _F.TYPE_MESSAGE, repeated=True, type_name=t + "Feature")
    m = fd.message_type.add(name="FeatureLists")
    _map_entry(m, "FeatureListEntry", t + "FeatureList")
    _field(m, "feature_list", 1, _F.TYPE_MESSAGE, repeated=True, type_name=t + "FeatureLists.FeatureListEntry")
    m = fd.message_type.add(name="Example")
    _field(m, "features", 1, _F.TYPE_MESSAGE, type_name=t + "Features")
    m = fd.message_type.add(name="SequenceExample")
    _field(m, "context", 1, _F.TYPE_MESSAGE, type_name=t + "Features")
    _field(m, "feature_lists", 2, _F.TYPE_MESSAGE, type_name=t + "FeatureLists")
    return fd


@cache
def messages() -> dict[str, type[Any]]:
    """``{"SequenceExample": cls, "Example": cls, "Feature": cls, ...}`` from a private pool."""
    pool = descriptor_pool.DescriptorPool()
    fd = pool.Add(file_descriptor_proto())
    return {name: message_factory.GetMessageClass(fd.message_types_by_name[name]) for name in fd.message_types_by_name}


def sequence_example() -> Any:
    """A new, empty ``tensorflow.SequenceExample``."""
    return messages()["SequenceExample"]()


__all__ = ["FILE_NAME", "PACKAGE", "file_descriptor_proto", "messages", "sequence_example"]
