"""How kproxy shows how it is doing: ``--metrics-address``, ``--access-log``, ``--access-log-file``.

In: :class:`~kproxy.config.flags.Flags`, the environment and the working directory. Out:
:class:`Observability` (where the admin listener binds, which access log, where it goes,
how often readiness is probed), or a :class:`~kproxy.errors.ConfigError` naming the flag
and the value. Nothing is bound or opened here: the server does that before it prints
``Starting to serve on`` (an address in use or an unwritable file is an error there).

``KPROXY_READINESS_PERIOD`` (seconds, default 10) sets how often the admin listener's
readiness probe asks the API server (tests shorten it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from kproxy.config.files import resolve
from kproxy.config.flags import Flags
from kproxy.errors import ConfigError
from kproxy.policy.gonet import join_host_port, split_host_port

__all__ = ["READINESS_PERIOD_ENV", "AccessLogFormat", "Observability", "observability"]

READINESS_PERIOD_ENV = "KPROXY_READINESS_PERIOD"
DEFAULT_READINESS_PERIOD = 10.0

AccessLogFormat = Literal["", "text", "json"]


@dataclass(frozen=True)
class Observability:
    metrics_host: str = ""  # bracket-free; "" with metrics_port None: no admin listener
    metrics_port: int | None = None  # 0: any free port (the log says which)
    access_log: AccessLogFormat = ""  # "": none (unless -v=2 asks for the text one)
    access_log_file: str = ""  # absolute; "": stderr
    readiness_period: float = DEFAULT_READINESS_PERIOD

    @property
    def metrics(self) -> bool:
        return self.metrics_port is not None

    @property
    def metrics_display(self) -> str:
        return join_host_port(self.metrics_host, str(self.metrics_port))


def observability(flags: Flags, environ: Mapping[str, str], base: str) -> Observability:
    """The three flags, checked. Raises ConfigError naming the flag."""
    host, port = _metrics_address(flags.metrics_address)
    fmt = flags.access_log.strip().lower()
    if fmt not in ("", "text", "json"):
        raise ConfigError(f"--access-log {flags.access_log!r}: use text or json")
    path = flags.access_log_file.strip()
    if path and not fmt:
        raise ConfigError(f"--access-log-file {path}: also give the format, --access-log text or --access-log json")
    return Observability(
        metrics_host=host,
        metrics_port=port,
        access_log=fmt,  # type: ignore[arg-type]  # checked above
        access_log_file=resolve(base, path) if path else "",
        readiness_period=_readiness_period(environ),
    )


def _metrics_address(value: str) -> tuple[str, int | None]:
    value = value.strip()
    if not value:
        return "", None
    split = split_host_port(value)
    wanted = "want HOST:PORT, e.g. 127.0.0.1:9090 ([::1]:9090 for IPv6; :9090 for every address)"
    if split is None:
        raise ConfigError(f"--metrics-address {value!r}: {wanted}")
    host, port_text = split
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"--metrics-address {value!r}: the port must be a number from 0 to 65535; {wanted}")
    if host == "localhost":
        host = "127.0.0.1"  # as --address: the first address Go resolves it to
    return host, int(port_text)


def _readiness_period(environ: Mapping[str, str]) -> float:
    raw = environ.get(READINESS_PERIOD_ENV, "").strip()
    if not raw:
        return DEFAULT_READINESS_PERIOD
    try:
        period = float(raw)
    except ValueError:
        period = math.nan
    if not (math.isfinite(period) and period > 0):
        raise ConfigError(f"{READINESS_PERIOD_ENV}={raw!r}: a number of seconds above 0, e.g. 10")
    return period
