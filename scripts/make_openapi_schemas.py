"""Write ``kproxy/testing/data/openapi_schemas.json``: the fake API server's OpenAPI v3 schemas.

Run it after changing what the fake serves, or to follow a newer client::

    python3 scripts/make_openapi_schemas.py

In: the models of the official ``kubernetes`` Python client (the version pinned in the
``test`` extra): each model's fields, JSON names, types, required fields and
descriptions, which that client generates from Kubernetes' own OpenAPI document. Out:
one JSON file, ``{"source": ..., "roots": {GROUP/VERSION: [schema names]}, "schemas":
{NAME: schema}}``, schema names as kube-apiserver publishes them
(``io.k8s.api.core.v1.Pod``), with ``x-kubernetes-group-version-kind`` on each served
kind, ``int-or-string`` and ``date-time`` formats, and the list keys the fake merges by
(``x-kubernetes-list-type``/``x-kubernetes-list-map-keys``, ``x-kubernetes-patch-*``).
What the client does not carry is not there: field-level descriptions of nested objects
(their type's description stands in) and defaults.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes.client.models as models

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from kproxy.testing.patches import LIST_KEYS  # noqa: E402

OUT = ROOT / "kproxy" / "testing" / "data" / "openapi_schemas.json"
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_META_MODELS = {
    "ObjectMeta", "ListMeta", "ManagedFieldsEntry", "OwnerReference", "LabelSelector",
    "LabelSelectorRequirement", "Condition", "Status", "StatusDetails", "StatusCause", "DeleteOptions",
    "Preconditions",
}  # fmt: skip
_PACKAGES = (
    (re.compile(r"^(Deployment|ReplicaSet|RollingUpdateDeployment)"), "io.k8s.api.apps.v1."),
    (
        re.compile(r"^(EndpointSlice|Endpoint$|EndpointConditions|EndpointHints|ForZone|ForNode)"),
        "io.k8s.api.discovery.v1.",
    ),
    (re.compile(r"^(SelfSubjectReview|UserInfo)"), "io.k8s.api.authentication.v1."),
    (
        re.compile(r"^(SelfSubject|ResourceAttributes|NonResourceAttributes|SubjectAccessReviewStatus|ResourceRule|"
                   r"NonResourceRule|SubjectRulesReviewStatus|FieldSelectorAttributes|LabelSelectorAttributes|"
                   r"FieldSelectorRequirement)"),
        "io.k8s.api.authorization.v1.",
    ),
)  # fmt: skip
ROOTS = {
    "api/v1": [
        ("V1Pod", "", "v1", "Pod"), ("V1PodList", "", "v1", "PodList"), ("V1Service", "", "v1", "Service"),
        ("V1ServiceList", "", "v1", "ServiceList"), ("V1Namespace", "", "v1", "Namespace"),
        ("V1NamespaceList", "", "v1", "NamespaceList"), ("V1Node", "", "v1", "Node"),
        ("V1NodeList", "", "v1", "NodeList"), ("V1ConfigMap", "", "v1", "ConfigMap"),
        ("V1ConfigMapList", "", "v1", "ConfigMapList"), ("V1Secret", "", "v1", "Secret"),
        ("V1SecretList", "", "v1", "SecretList"), ("V1ServiceAccount", "", "v1", "ServiceAccount"),
        ("V1ServiceAccountList", "", "v1", "ServiceAccountList"), ("V1Endpoints", "", "v1", "Endpoints"),
        ("V1EndpointsList", "", "v1", "EndpointsList"), ("CoreV1Event", "", "v1", "Event"),
        ("CoreV1EventList", "", "v1", "EventList"), ("V1Status", "", "v1", "Status"),
    ],
    "apis/apps/v1": [
        ("V1Deployment", "apps", "v1", "Deployment"), ("V1DeploymentList", "apps", "v1", "DeploymentList"),
        ("V1ReplicaSet", "apps", "v1", "ReplicaSet"), ("V1ReplicaSetList", "apps", "v1", "ReplicaSetList"),
    ],
    "apis/discovery.k8s.io/v1": [
        ("V1EndpointSlice", "discovery.k8s.io", "v1", "EndpointSlice"),
        ("V1EndpointSliceList", "discovery.k8s.io", "v1", "EndpointSliceList"),
    ],
    "apis/events.k8s.io/v1": [
        ("EventsV1Event", "events.k8s.io", "v1", "Event"), ("EventsV1EventList", "events.k8s.io", "v1", "EventList"),
    ],
    "apis/authentication.k8s.io/v1": [("V1SelfSubjectReview", "authentication.k8s.io", "v1", "SelfSubjectReview")],
    "apis/authorization.k8s.io/v1": [
        ("V1SelfSubjectAccessReview", "authorization.k8s.io", "v1", "SelfSubjectAccessReview"),
        ("V1SelfSubjectRulesReview", "authorization.k8s.io", "v1", "SelfSubjectRulesReview"),
    ],
}  # fmt: skip
_INT_OR_STRING_FIELDS = {"targetPort", "port", "maxSurge", "maxUnavailable", "minAvailable"}
_SPECIAL = {
    META + "Time": {"type": "string", "format": "date-time", "description": "Time is a wrapper around time.Time."},
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "type": "string",
        "format": "int-or-string",
        "description": "IntOrString is a type that can hold an int32 or a string.",
    },
}


def schema_name(model: str) -> str:
    for prefix, package in (("CoreV1", "io.k8s.api.core.v1."), ("EventsV1", "io.k8s.api.events.v1."),
                            ("DiscoveryV1", "io.k8s.api.discovery.v1.")):  # fmt: skip
        if model.startswith(prefix):
            return package + model[len(prefix) :]
    short = re.sub(r"^V\d+(alpha\d+|beta\d+)?", "", model)
    if short in _META_MODELS:
        return META + short
    for pattern, package in _PACKAGES:
        if pattern.match(short):
            return package + short
    return "io.k8s.api.core.v1." + short


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def field_schema(type_text: str, json_name: str, pending: list[str]) -> dict[str, Any]:
    if type_text.startswith("List["):
        return {"type": "array", "items": field_schema(type_text[5:-1], "", pending)}
    if type_text.startswith("Dict[str, "):
        return {"type": "object", "additionalProperties": field_schema(type_text[10:-1], "", pending)}
    simple = {"str": {"type": "string"}, "int": {"type": "integer", "format": "int32"}, "bool": {"type": "boolean"},
              "float": {"type": "number", "format": "double"}, "bytearray": {"type": "string", "format": "byte"},
              "bytes": {"type": "string", "format": "byte"}}  # fmt: skip
    if type_text in simple:
        return dict(simple[type_text])
    if type_text in ("datetime", "date"):
        return ref(META + "Time")
    if type_text == "object":
        if json_name in _INT_OR_STRING_FIELDS:
            return ref("io.k8s.apimachinery.pkg.util.intstr.IntOrString")
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    pending.append(type_text)
    return ref(schema_name(type_text))


def describe(cls: Any) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.split("\n\n    Attributes:")[0].split("Attributes:")[0].strip()


def model_schema(model: str, pending: list[str]) -> dict[str, Any]:
    cls = getattr(models, model)
    properties: dict[str, Any] = {}
    required = []
    for attr, type_text in cls.openapi_types.items():
        json_name = cls.attribute_map[attr]
        prop = field_schema(type_text, json_name, pending)
        field = cls.model_fields.get(attr)
        description = field.description if field is not None else None
        if description:
            prop = (
                {"allOf": [prop], "description": description}
                if "$ref" in prop
                else {**prop, "description": description}
            )
        if prop.get("type") == "array" and (keys := LIST_KEYS.get(json_name)):
            prop.update({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)})
            prop.update({"x-kubernetes-patch-merge-key": keys[0], "x-kubernetes-patch-strategy": "merge"})
        properties[json_name] = prop
        if field is not None and field.is_required():
            required.append(json_name)
    schema: dict[str, Any] = {"type": "object", "description": describe(cls), "properties": properties}
    if required:
        schema["required"] = required
    return schema


def main() -> None:
    schemas: dict[str, Any] = dict(_SPECIAL)
    roots: dict[str, list[str]] = {}
    for gv, kinds in ROOTS.items():
        roots[gv] = []
        for model, group, version, kind in kinds:
            pending = [model]
            while pending:
                current = pending.pop()
                name = schema_name(current)
                if name not in schemas:
                    schemas[name] = model_schema(current, pending)
            name = schema_name(model)
            gvks = schemas[name].setdefault("x-kubernetes-group-version-kind", [])
            if {"group": group, "kind": kind, "version": version} not in gvks:
                gvks.append({"group": group, "kind": kind, "version": version})
            roots[gv].append(name)
    source = (
        f"generated by scripts/make_openapi_schemas.py from the models of the kubernetes Python client "
        f"{kubernetes.__version__} (Apache-2.0), which carry Kubernetes' API descriptions"
    )
    document = {"source": source, "roots": roots, "schemas": dict(sorted(schemas.items()))}
    OUT.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {len(schemas)} schemas, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
