"""How the fake API server reads bodies and writes answers, as kube-apiserver does on the wire.

* Answers are compact JSON ending in a newline (Go's ``json.Encoder``), or YAML when the
  client prefers ``application/yaml``. The ``Accept`` header can also ask for a different
  shape: ``as=Table`` or ``as=PartialObjectMetadata[List]`` in ``meta.k8s.io/v1[beta1]``.
  A client that accepts none of these gets ``406 NotAcceptable``.
* Headers: ``Audit-Id``, ``Cache-Control: no-cache, private`` and the priority-and-fairness
  UIDs, like kube-apiserver's.
* Bodies over 128 KiB are gzipped (level 1, ``Vary: Accept-Encoding``) when the client's
  ``Accept-Encoding`` allows gzip (kube-apiserver's ``APIResponseCompression``).
* Request bodies: JSON, YAML, patch types, and protobuf for the kinds ``protobuf`` knows.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web
from multidict import CIMultiDict

from kproxy.testing import protobuf
from kproxy.testing.status import ApiError

__all__ = [
    "JSON",
    "PATCH_TYPES",
    "YAML",
    "Negotiated",
    "accepts_gzip",
    "add_warnings",
    "api_headers",
    "decode_body",
    "dump",
    "flag",
    "negotiate",
    "parse_accept",
    "respond",
    "status_response",
]

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
META_GROUP = "meta.k8s.io"
PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
    "application/apply-patch+yaml": "apply",
}
# The Warning headers (RFC 7234 §5.5) each request's answer will carry, by id(request):
# taken by respond(), which every answer goes through.
_WARNINGS: dict[int, list[str]] = {}
_GZIP_THRESHOLD = 128 * 1024  # kube-apiserver's defaultGzipThresholdBytes
_FLOW_SCHEMA_UID = "f5c6a6a0-3f4e-4c7b-9b8e-6f2d6c1a7e01"
_PRIORITY_LEVEL_UID = "0b8e1c3d-5a2f-4e6b-8c9d-7a1e2f3b4c02"
_JSON_BODIES = {
    JSON,
    "",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
}
_YAML_BODIES = {YAML, "application/apply-patch+yaml", "application/x-yaml", "text/yaml"}
_SHAPES = ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")


@dataclass(frozen=True)
class MediaType:
    mime: str
    params: dict[str, str]


def parse_accept(header: str) -> list[MediaType]:
    out = []
    for item in header.split(","):
        mime, *params = (p.strip() for p in item.split(";"))
        if not mime:
            continue
        values = {}
        for param in params:
            key, _, value = param.partition("=")
            values[key.strip().lower()] = value.strip()
        out.append(MediaType(mime.lower(), values))
    return out or [MediaType("*/*", {})]


@dataclass(frozen=True)
class Negotiated:
    """What ``Accept`` asked for: the format (JSON or YAML) and the object shape."""

    fmt: str
    shape: str = ""  # "", "Table", "PartialObjectMetadata", "PartialObjectMetadataList"
    api_version: str = ""  # of the shape: meta.k8s.io/v1 or v1beta1


def negotiate(request: web.BaseRequest, *, allow_shapes: bool) -> Negotiated:
    for media in parse_accept(request.headers.get("Accept", "")):
        if media.mime not in (JSON, YAML, "application/*", "*/*"):
            continue
        fmt = YAML if media.mime == YAML else JSON
        shape = media.params.get("as", "")
        if not shape:
            return Negotiated(fmt)
        group, version = media.params.get("g", ""), media.params.get("v", "")
        if allow_shapes and group == META_GROUP and version in ("v1", "v1beta1") and shape in _SHAPES:
            return Negotiated(fmt, shape, f"{group}/{version}")
    raise ApiError(
        406, "NotAcceptable", "only the following media types are accepted: application/json, application/yaml"
    )


def dump(obj: Any, fmt: str = JSON) -> bytes:
    if fmt == YAML:
        return yaml.safe_dump(obj, sort_keys=False).encode()
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("true", "1")


def accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip()
            try:
                return not (q.startswith("q=") and float(q[2:] or 0) == 0)
            except ValueError:
                return False
    return False


def decode_body(request: web.BaseRequest, data: bytes) -> Any:
    """A request body as JSON-shaped data; 400 if unparsable, 415 for an unknown format."""
    ctype = request.headers.get("Content-Type", JSON).split(";")[0].strip().lower()
    try:
        if ctype in _JSON_BODIES:
            return json.loads(data)
        if ctype in _YAML_BODIES:
            return yaml.safe_load(data)
        if ctype == PROTOBUF:
            return protobuf.decode_object(data)
    except protobuf.ProtobufError as exc:
        raise ApiError(415, "UnsupportedMediaType", str(exc)) from None
    except (ValueError, yaml.YAMLError) as exc:
        raise ApiError.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {JSON}, {YAML}, {PROTOBUF}",
    )


def api_headers(content_type: str, *, authenticated: bool = True) -> dict[str, str]:
    headers = {"Audit-Id": str(uuid.uuid4()), "Cache-Control": "no-cache, private", "Content-Type": content_type}
    if authenticated:
        headers["X-Kubernetes-Pf-Flowschema-Uid"] = _FLOW_SCHEMA_UID
        headers["X-Kubernetes-Pf-Prioritylevel-Uid"] = _PRIORITY_LEVEL_UID
    return headers


def respond(
    request: web.BaseRequest,
    obj: Any,
    *,
    status: int = 200,
    fmt: str = JSON,
    content_type: str | None = None,
) -> web.Response:
    body = dump(obj, fmt)
    headers = api_headers(content_type or fmt, authenticated=status != 401)
    if len(body) > _GZIP_THRESHOLD and accepts_gzip(request.headers.get("Accept-Encoding", "")):
        body = gzip.compress(body, compresslevel=1)  # kube-apiserver uses BestSpeed
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
    out = CIMultiDict(headers)
    for warning in _WARNINGS.pop(id(request), ()):
        out.add("Warning", '299 - "' + warning.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return web.Response(status=status, body=body, headers=out)


def add_warnings(request: web.BaseRequest, warnings: list[str]) -> None:
    """Have the answer to ``request`` carry ``Warning: 299 - "TEXT"`` headers, as kube-apiserver's do."""
    _WARNINGS.setdefault(id(request), []).extend(warnings)


def status_response(request: web.BaseRequest, exc: ApiError) -> web.Response:
    return respond(request, exc.status(), status=exc.code)
