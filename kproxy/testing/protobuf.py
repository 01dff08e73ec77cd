"""Just enough Kubernetes protobuf to read what kubectl's typed clients send.

kubectl's ``create configmap|namespace|service ...`` and ``auth whoami|can-i`` commands
post their object as ``application/vnd.kubernetes.protobuf`` (other commands send JSON),
with no fallback to JSON when the server declines. So the fake decodes those bodies:
the envelope is the magic ``k8s\\0`` followed by a ``runtime.Unknown`` message (type
meta, then the raw object), and the object is one of the message types below, converted
to the JSON the same object would have had. Field numbers are those of
``k8s.io/api/core/v1``, ``apps/v1``, ``authentication/v1``, ``authorization/v1`` and
``k8s.io/apimachinery/pkg/apis/meta/v1`` ``generated.proto``.

Only ConfigMap, Namespace, Secret, Service, ServiceAccount, Deployment (the fields
``kubectl create deployment`` sets) and the self-reviews of ``kubectl auth`` are
understood (unknown fields are skipped); the fake never *answers* in protobuf, since
every client that sends it also accepts JSON. Empty strings, zeros and false are left
out of the result, like ``omitempty`` in JSON.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator
from typing import Any, Union

__all__ = ["MAGIC", "ProtobufError", "decode_object"]

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A body that is not a (supported) Kubernetes protobuf object."""


# A field type: a scalar name, a nested message, ("map", value type) or ("repeated", type).
FieldType = Union[str, "Message", tuple[str, Any]]
Message = dict[int, tuple[str, FieldType]]

_TIME: Message = {1: ("seconds", "int64"), 2: ("nanos", "int32")}
_INT_OR_STRING: Message = {1: ("type", "int64"), 2: ("intVal", "int32"), 3: ("strVal", "string")}
_OWNER_REFERENCE: Message = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
_OBJECT_META: Message = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    4: ("selfLink", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    7: ("generation", "int64"),
    8: ("creationTimestamp", "time"),
    9: ("deletionTimestamp", "time"),
    10: ("deletionGracePeriodSeconds", "int64"),
    11: ("labels", ("map", "string")),
    12: ("annotations", ("map", "string")),
    13: ("ownerReferences", ("repeated", _OWNER_REFERENCE)),
    14: ("finalizers", ("repeated", "string")),
}
_CONFIG_MAP: Message = {
    1: ("metadata", _OBJECT_META),
    2: ("data", ("map", "string")),
    3: ("binaryData", ("map", "bytes")),
    4: ("immutable", "bool"),
}
_NAMESPACE: Message = {
    1: ("metadata", _OBJECT_META),
    2: ("spec", {1: ("finalizers", ("repeated", "string"))}),
    3: ("status", {1: ("phase", "string")}),
}
_SERVICE_PORT: Message = {
    1: ("name", "string"),
    2: ("protocol", "string"),
    3: ("port", "int32"),
    4: ("targetPort", "intorstring"),
    5: ("nodePort", "int32"),
    6: ("appProtocol", "string"),
}
_SERVICE_SPEC: Message = {
    1: ("ports", ("repeated", _SERVICE_PORT)),
    2: ("selector", ("map", "string")),
    3: ("clusterIP", "string"),
    4: ("type", "string"),
    5: ("externalIPs", ("repeated", "string")),
    7: ("sessionAffinity", "string"),
    8: ("loadBalancerIP", "string"),
    9: ("loadBalancerSourceRanges", ("repeated", "string")),
    10: ("externalName", "string"),
    11: ("externalTrafficPolicy", "string"),
    12: ("healthCheckNodePort", "int32"),
    13: ("publishNotReadyAddresses", "bool"),
    17: ("ipFamilyPolicy", "string"),
    18: ("clusterIPs", ("repeated", "string")),
    19: ("ipFamilies", ("repeated", "string")),
    20: ("allocateLoadBalancerNodePorts", "bool"),
    21: ("loadBalancerClass", "string"),
    22: ("internalTrafficPolicy", "string"),
    23: ("trafficDistribution", "string"),
}
_SERVICE: Message = {1: ("metadata", _OBJECT_META), 2: ("spec", _SERVICE_SPEC)}
_SECRET: Message = {
    1: ("metadata", _OBJECT_META),
    2: ("data", ("map", "bytes")),
    3: ("type", "string"),
    4: ("stringData", ("map", "string")),
    5: ("immutable", "bool"),
}
# What kubectl create deployment sends: the pod template's common fields.
_LABEL_SELECTOR: Message = {1: ("matchLabels", ("map", "string"))}
_QUANTITY: Message = {1: ("string", "string")}
_CONTAINER: Message = {
    1: ("name", "string"),
    2: ("image", "string"),
    3: ("command", ("repeated", "string")),
    4: ("args", ("repeated", "string")),
    5: ("workingDir", "string"),
    6: (
        "ports",
        (
            "repeated",
            {
                1: ("name", "string"),
                2: ("hostPort", "int32"),
                3: ("containerPort", "int32"),
                4: ("protocol", "string"),
                5: ("hostIP", "string"),
            },
        ),
    ),
    7: ("env", ("repeated", {1: ("name", "string"), 2: ("value", "string")})),
    14: ("imagePullPolicy", "string"),
    16: ("stdin", "bool"),
    17: ("stdinOnce", "bool"),
    18: ("tty", "bool"),
}
_POD_SPEC: Message = {
    2: ("containers", ("repeated", _CONTAINER)),
    3: ("restartPolicy", "string"),
    7: ("nodeSelector", ("map", "string")),
    8: ("serviceAccountName", "string"),
    20: ("initContainers", ("repeated", _CONTAINER)),
}
_POD_TEMPLATE: Message = {1: ("metadata", _OBJECT_META), 2: ("spec", _POD_SPEC)}
_DEPLOYMENT: Message = {
    1: ("metadata", _OBJECT_META),
    2: (
        "spec",
        {
            1: ("replicas", "int32"),
            2: ("selector", _LABEL_SELECTOR),
            3: ("template", _POD_TEMPLATE),
            4: ("strategy", {1: ("type", "string")}),
            5: ("minReadySeconds", "int32"),
            6: ("revisionHistoryLimit", "int32"),
            7: ("paused", "bool"),
            9: ("progressDeadlineSeconds", "int32"),
        },
    ),
}
_SERVICE_ACCOUNT: Message = {1: ("metadata", _OBJECT_META)}

# k8s.io/api/authentication/v1 and authorization/v1: what kubectl auth whoami and can-i post.
_RESOURCE_ATTRIBUTES: Message = {
    1: ("namespace", "string"),
    2: ("verb", "string"),
    3: ("group", "string"),
    4: ("version", "string"),
    5: ("resource", "string"),
    6: ("subresource", "string"),
    7: ("name", "string"),
}
_SELF_SUBJECT_ACCESS_REVIEW: Message = {
    1: ("metadata", _OBJECT_META),
    2: (
        "spec",
        {
            1: ("resourceAttributes", _RESOURCE_ATTRIBUTES),
            2: ("nonResourceAttributes", {1: ("path", "string"), 2: ("verb", "string")}),
        },
    ),
}
_SELF_SUBJECT_RULES_REVIEW: Message = {1: ("metadata", _OBJECT_META), 2: ("spec", {1: ("namespace", "string")})}

_KINDS: dict[str, Message] = {
    "ConfigMap": _CONFIG_MAP,
    "Namespace": _NAMESPACE,
    "Service": _SERVICE,
    "Secret": _SECRET,
    "ServiceAccount": _SERVICE_ACCOUNT,
    "Deployment": _DEPLOYMENT,
    "SelfSubjectReview": {1: ("metadata", _OBJECT_META)},
    "SelfSubjectAccessReview": _SELF_SUBJECT_ACCESS_REVIEW,
    "SelfSubjectRulesReview": _SELF_SUBJECT_RULES_REVIEW,
}


def decode_object(data: bytes) -> dict[str, Any]:
    """A ``k8s\\0``-prefixed protobuf object as the JSON-shaped dict it stands for."""
    if not data.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    envelope = _message(
        data[len(MAGIC) :],
        {1: ("typeMeta", {1: ("apiVersion", "string"), 2: ("kind", "string")}), 2: ("raw", "rawbytes")},
    )
    type_meta = envelope.get("typeMeta", {})
    kind = type_meta.get("kind", "")
    schema = _KINDS.get(kind)
    if schema is None:
        raise ProtobufError(f"the fake API server cannot decode protobuf {kind or 'objects of unknown kind'}")
    obj = _message(envelope.get("raw", b""), schema)
    return {"kind": kind, "apiVersion": type_meta.get("apiVersion", "v1"), **obj}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        yield number, wire, value


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    return max(min(value, (1 << (bits - 1)) - 1), -(1 << (bits - 1)))


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "string":
        return bytes(value).decode() if isinstance(value, bytes) else ""
    if kind == "bytes":
        return base64.b64encode(value).decode() if isinstance(value, bytes) else ""
    if kind == "rawbytes":
        return value
    if kind == "bool":
        return bool(value)
    if kind in ("int32", "int64"):
        return _signed(int(value), 32 if kind == "int32" else 64) if isinstance(value, int) else 0
    if kind == "time":
        seconds = _message(value, _TIME).get("seconds", 0) if isinstance(value, bytes) else 0
        if not seconds:
            return ""  # Go's zero time: JSON null, left out here
        return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "intorstring":
        parts = _message(value, _INT_OR_STRING) if isinstance(value, bytes) else {}
        return parts.get("strVal", "") if parts.get("type") == 1 else parts.get("intVal", 0)
    raise ProtobufError(f"unknown field type {kind}")


def _decode(ftype: FieldType, value: int | bytes) -> Any:
    if isinstance(ftype, dict):
        return _message(value, ftype) if isinstance(value, bytes) else {}
    if isinstance(ftype, str):
        return _scalar(ftype, value)
    raise ProtobufError("nested collections are not supported")


def _message(data: bytes | int, schema: Message) -> dict[str, Any]:
    if not isinstance(data, bytes):
        return {}
    out: dict[str, Any] = {}
    for number, _wire, value in _fields(data):
        if number not in schema:
            continue  # a field this fake does not know: skipped, like an old client would
        name, ftype = schema[number]
        if isinstance(ftype, tuple):
            container, inner = ftype
            if container == "map":
                entry = _message(value, {1: ("key", "string"), 2: ("value", inner)})
                out.setdefault(name, {})[entry.get("key", "")] = entry.get("value", "" if inner != "int32" else 0)
            else:
                out.setdefault(name, []).append(_decode(inner, value))
            continue
        decoded = _decode(ftype, value)
        if decoded in ("", 0, False, {}) and ftype not in ("intorstring",):
            continue  # omitempty
        out[name] = decoded
    return out
