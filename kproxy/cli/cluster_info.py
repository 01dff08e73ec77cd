"""``kproxy cluster-info`` and ``kproxy url``: what to open, through a running kproxy.

In: argv after the subcommand; for ``cluster-info`` also the API, reached through a
running kproxy (``--proxy-url``, default ``http://127.0.0.1:8001``) with kubernetes-asyncio.
Out: text on stdout, or one ``error: ...`` line on stderr and exit 1.

``cluster-info`` prints what ``kubectl cluster-info --server PROXY_URL`` prints (kubectl
1.32, ``pkg/cmd/clusterinfo``), byte for byte: the control plane line, then one line per
service labelled ``kubernetes.io/cluster-service=true`` in ``kube-system`` (``-n``), in
list order, named by its ``kubernetes.io/name`` label or its name, with

* a LoadBalancer's ingress: ``http://IP:PORT `` for each port (trailing spaces included);
* otherwise its proxy URL: the first port's name, and ``https:`` when that port is named
  ``https`` or is 443 (``https:metrics-server:`` for an unnamed 443 port);

and kubectl's closing hint. kubectl 1.32 writes no colour codes, on a terminal or not.
The proxy URL is printed as given (kubectl prints its ``--server`` as given, too).

``url`` builds a proxy URL offline: ``svc/NAME[:PORT]``, ``pod/NAME[:PORT]`` or
``node/NAME[:PORT]`` (or the full ``[SCHEME:]NAME[:PORT]``), validated by
:mod:`kproxy.policy.service_urls`, ending in ``/proxy/`` (where the API server's redirect for
``/proxy`` would send a browser anyway) or ``/proxy/PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

from kproxy.errors import ConfigError, KproxyError, UpstreamError
from kproxy.policy.gonet import is_loopback_host
from kproxy.policy.service_urls import InvalidProxyURL, Kind, ProxyTarget, proxy_url, target

__all__ = ["DEFAULT_PROXY_URL", "build_url", "cluster_info", "main_cluster_info", "main_url", "render_cluster_info"]

DEFAULT_PROXY_URL = "http://127.0.0.1:8001"
CLUSTER_SERVICE_LABEL = "kubernetes.io/cluster-service=true"
_DUMP_HINT = "\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n"
_KINDS: dict[str, Kind] = {
    "svc": "service",
    "service": "service",
    "services": "service",
    "po": "pod",
    "pod": "pod",
    "pods": "pod",
    "no": "node",
    "node": "node",
    "nodes": "node",
}


def render_cluster_info(host: str, services: Iterable[Mapping[str, Any]]) -> str:
    """kubectl's text for ``services`` (Service objects as JSON dicts) behind ``host``."""
    lines = [f"Kubernetes control plane is running at {host}"]
    for service in services:
        meta = service.get("metadata") or {}
        ports = (service.get("spec") or {}).get("ports") or []
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if ingress:
            ip = ingress[0].get("ip") or ingress[0].get("hostname") or ""
            link = "".join(f"http://{ip}:{port.get('port', 0)} " for port in ports)
        else:
            scheme = port_name = ""
            if ports:
                port_name = ports[0].get("name") or ""
                # kubectl: "guess if the scheme is https"
                if port_name == "https" or ports[0].get("port") == 443:
                    scheme = "https"
            t = ProxyTarget("service", meta.get("namespace", ""), scheme, meta.get("name", ""), port_name)
            link = host + t.path()
        name = (meta.get("labels") or {}).get("kubernetes.io/name") or meta.get("name", "")
        lines.append(f"{name} is running at {link}")
    return "\n".join(lines) + "\n" + _DUMP_HINT


def _api_message(status: int, body: Any) -> str:
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        status_obj = json.loads(text)
        if isinstance(status_obj, dict) and status_obj.get("message"):
            reason = status_obj.get("reason")
            return f"{status} {reason}: {status_obj['message']}" if reason else f"{status}: {status_obj['message']}"
    except ValueError:
        pass
    return f"{status}: {text.strip()[:200]}" if text.strip() else str(status)


def _reason(exc: BaseException) -> str:
    cause = getattr(exc, "os_error", exc)  # aiohttp's ClientConnectorError wraps the OSError
    if isinstance(cause, OSError) and cause.errno:
        return os.strerror(cause.errno).lower()
    return str(exc) or exc.__class__.__name__


async def cluster_info(proxy_url: str, namespace: str = "kube-system") -> str:
    """List the cluster services through the kproxy at ``proxy_url``; kubectl's text.

    Raises :class:`~kproxy.errors.UpstreamError` when the proxy cannot be reached or the
    API answers with an error.
    """
    import aiohttp
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    base = proxy_url if "://" in proxy_url else "http://" + proxy_url
    config = client.Configuration(host=base.rstrip("/"))
    async with client.ApiClient(config) as api:
        if is_loopback_host(urlsplit(base).hostname or ""):
            # Go (and so kubectl) never sends loopback traffic through HTTP(S)_PROXY;
            # kubernetes-asyncio's session trusts the environment, so replace it.
            rest = api.rest_client
            await rest.pool_manager.close()
            rest.pool_manager = aiohttp.ClientSession(trust_env=False, read_bufsize=2**21)
        try:
            result = await client.CoreV1Api(api).list_namespaced_service(
                namespace, label_selector=CLUSTER_SERVICE_LABEL
            )
        except ApiException as exc:
            raise UpstreamError(
                f"listing services in {namespace} through {proxy_url}: {_api_message(exc.status, exc.body)}"
            ) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(
                f"cannot reach kproxy at {proxy_url}: {_reason(exc)}; is it running?"
                " Start it with `kproxy`, or pass --proxy-url"
            ) from exc
        services = api.sanitize_for_serialization(result).get("items") or []
    return render_cluster_info(proxy_url, services)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(1, f"error: {message}\n")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 1


def main_cluster_info(argv: Sequence[str]) -> int:
    """``kproxy cluster-info [--proxy-url URL] [-n NAMESPACE]``."""
    parser = _Parser(
        prog="kproxy cluster-info",
        description="Show the cluster's services and their proxy URLs through a running kproxy,"
        " as `kubectl cluster-info --server URL` does.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--proxy-url", default=DEFAULT_PROXY_URL, help=f"kproxy's address (default {DEFAULT_PROXY_URL})"
    )
    parser.add_argument("-n", "--namespace", default="kube-system", help="where to look (default kube-system)")
    ns = parser.parse_args(list(argv))
    try:
        text = asyncio.run(cluster_info(ns.proxy_url, ns.namespace))
    except KproxyError as exc:
        return _fail(str(exc))
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


def build_url(
    spec: str, *, namespace: str = "default", https: bool = False, path: str = "", base_url: str = DEFAULT_PROXY_URL
) -> str:
    """The URL ``kproxy url`` prints. Raises :class:`InvalidProxyURL` naming the bad part,
    or :class:`~kproxy.errors.ConfigError` when ``spec`` is not ``TYPE/...``."""
    resource, slash, id_text = spec.partition("/")
    kind = _KINDS.get(resource.lower())
    if not slash or kind is None:
        raise ConfigError(f"{spec!r} is not TYPE/NAME[:PORT]: use svc/NAME[:PORT], pod/NAME[:PORT] or node/NAME[:PORT]")
    rest, qmark, query = path.partition("?")
    rest = rest if rest.startswith("/") else "/" + rest
    t = target(kind, id_text, namespace=namespace, rest=rest, query=query if qmark else None)
    if https:
        if t.scheme == "http":
            raise InvalidProxyURL(kind, "scheme", t.scheme, "contradicts --https")
        t = dataclasses.replace(t, scheme="https")
    return proxy_url(base_url, t)


def main_url(argv: Sequence[str]) -> int:
    """``kproxy url svc/NAME[:PORT] | pod/NAME[:PORT] | node/NAME[:PORT] [PATH] [-n NS] [--https]``."""
    parser = _Parser(
        prog="kproxy url",
        description="Print the proxy URL of a service, pod or node port, under a kproxy's address.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "target", metavar="TYPE/NAME[:PORT]", help="svc/NAME[:PORT], pod/NAME[:PORT] or node/NAME[:PORT]"
    )
    parser.add_argument("path", nargs="?", default="", help="a path (and ?query) after /proxy/")
    parser.add_argument(
        "-n", "--namespace", default="default", help="the namespace of a service or pod (default default)"
    )
    parser.add_argument("--https", action="store_true", help="reach the port with https (an https: scheme prefix)")
    parser.add_argument(
        "--proxy-url", default=DEFAULT_PROXY_URL, help=f"kproxy's address (default {DEFAULT_PROXY_URL})"
    )
    ns = parser.parse_intermixed_args(list(argv))
    try:
        url = build_url(ns.target, namespace=ns.namespace, https=ns.https, path=ns.path, base_url=ns.proxy_url)
    except KproxyError as exc:
        return _fail(str(exc))
    print(url, flush=True)
    return 0
