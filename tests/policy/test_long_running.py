"""kproxy.policy.long_running: which requests kube-apiserver keeps open (RequestInfoFactory)."""

from __future__ import annotations

import pytest

from kproxy.policy.long_running import is_long_running


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/pods", None, False),
        ("GET", "/api/v1/pods", "watch=true", True),
        ("GET", "/api/v1/pods", "watch=1", True),
        ("GET", "/api/v1/pods", "watch=True", True),
        ("GET", "/api/v1/pods", "watch=t", True),
        ("GET", "/api/v1/pods", "watch=false", False),
        ("GET", "/api/v1/pods", "watch=0", False),
        ("GET", "/api/v1/pods", "watch=yes", False),  # not strconv.ParseBool
        ("GET", "/api/v1/pods", "watch=", False),
        ("GET", "/api/v1/pods", "watch", False),
        ("GET", "/api/v1/pods", "watch=false&watch=true", False),  # the first value counts
        ("GET", "/api/v1/pods", "labelSelector=a&watch=true", True),
        ("GET", "/api/v1/pods", "allowWatchBookmarks=true&resourceVersion=1&watch=1", True),
        ("GET", "/api/v1/pods", "nowatch=true", False),
        ("GET", "/api/v1/pods", "%77atch=true", True),  # url.ParseQuery decodes names too
        ("GET", "/api/v1/watch/pods", None, True),
        ("GET", "/api/v1/watch/namespaces/default/pods/p", None, True),
        ("GET", "/apis/apps/v1/watch/deployments", None, True),
        ("GET", "/apis/apps/v1/deployments", "watch=true", True),
        ("GET", "/apis/watch/v1/things", None, False),  # a group named watch
        ("GET", "/api/v1/namespaces/watch", None, False),
        ("GET", "/api/v1/namespaces/default/pods/p/log", "follow=true", True),
        ("GET", "/api/v1/namespaces/default/pods/p/log", "follow=1&container=c", True),
        ("GET", "/api/v1/namespaces/default/pods/p/log", "follow=false", False),
        ("GET", "/api/v1/namespaces/default/pods/p/log", None, False),
        ("GET", "/api/v1/namespaces/default/pods/p/status", "follow=true", False),
        ("GET", "/api/v1/namespaces/default/services/s/proxy/x", "follow=true", False),
        ("POST", "/api/v1/pods", "watch=true", False),
        ("DELETE", "/api/v1/watch/pods", None, False),
        ("HEAD", "/api/v1/pods", "watch=true", False),
    ],
)
def test_long_running(method: str, path: str, query: str | None, expected: bool) -> None:
    assert is_long_running(method, path, query) is expected
