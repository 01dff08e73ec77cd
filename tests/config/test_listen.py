"""kproxy.config.listen: --port, --address and --unix-socket as kubectl takes them."""

from __future__ import annotations

import pytest

from kproxy.config.flags import Flags
from kproxy.config.listen import Listen, listen_on
from kproxy.errors import ConfigError


@pytest.mark.parametrize(
    ("flags", "listen"),
    [
        (Flags(), Listen("127.0.0.1", 8001, "", False)),
        (Flags(port=0), Listen("127.0.0.1", 0, "", False)),
        (Flags(address="::1"), Listen("::1", 8001, "", False)),
        (Flags(address="[::1]"), Listen("::1", 8001, "", False)),
        (Flags(address=" 10.0.0.1 "), Listen("10.0.0.1", 8001, "", False)),
        (Flags(address="localhost"), Listen("127.0.0.1", 8001, "", False)),  # Go binds its first address
        (Flags(address="0.0.0.0"), Listen("::", 8001, "", True)),  # dual-stack
        (Flags(address="::"), Listen("::", 8001, "", False)),
        (Flags(unix_socket="/tmp/k.sock"), Listen("", 0, "/tmp/k.sock", False)),
        (Flags(unix_socket="/tmp/k.sock", port=8001), Listen("", 0, "/tmp/k.sock", False)),  # the default
    ],
)
def test_listen_on(flags: Flags, listen: Listen) -> None:
    assert listen_on(flags) == listen


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (Flags(unix_socket="/tmp/k.sock", port=9000), "cannot set --unix-socket and --port at the same time"),
        (Flags(unix_socket="/tmp/k.sock", port=0), "cannot set --unix-socket and --port at the same time"),
        (Flags(port=70000), "--port 70000: must be between 0 and 65535"),
        (Flags(port=-1), "--port -1: must be between 0 and 65535"),
        (Flags(address=""), '--address "": give an IP address or host name to listen on, e.g. 127.0.0.1'),
        (Flags(address="[]"), '--address "": give an IP address or host name to listen on, e.g. 127.0.0.1'),
    ],
)
def test_listen_refuses(flags: Flags, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        listen_on(flags)
    assert str(info.value) == message
