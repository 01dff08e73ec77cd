"""Kubeconfig texts and secrets shared by the kubeconfig tests.

The secrets are recognisable strings, so a test can assert that no message or ``repr``
contains them.
"""

from __future__ import annotations

import base64
import textwrap

from kproxy.policy.kubeconfig.model import KubeConfig
from kproxy.policy.kubeconfig.parsing import parse

SRC = "/home/me/.kube/config"
TOKEN = "tok-S3CRET-0001"
PASSWORD = "pw-S3CRET-0002"
KEY_PEM = b"-----BEGIN PRIVATE KEY-----\nkey-S3CRET-0003\n-----END PRIVATE KEY-----\n"
KEY_B64 = base64.b64encode(KEY_PEM).decode()
CA_PEM = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"
CA_B64 = base64.b64encode(CA_PEM).decode()
SECRETS = (TOKEN, PASSWORD, "key-S3CRET-0003", KEY_B64, "S3CRET")


def kc(text: str, source: str = SRC) -> KubeConfig:
    """``text``, dedented, parsed as if read from ``source``."""
    return parse(textwrap.dedent(text), source)


# Every field kproxy reads, secrets included, in one file.
FULL = f"""
    apiVersion: v1
    kind: Config
    preferences: {{}}
    clusters:
    - name: prod
      cluster:
        server: https://prod.example:6443/k8s/clusters/c-1
        certificate-authority-data: {CA_B64}
        insecure-skip-tls-verify: false
        tls-server-name: api.prod
        proxy-url: http://proxy.corp:3128
        disable-compression: true
        extensions:
        - name: client.authentication.k8s.io/exec
          extension: {{audience: prod}}
        unknown-key: ignored
    users:
    - name: alice
      user:
        token: {TOKEN}
        tokenFile: tokens/alice
        username: alice
        password: {PASSWORD}
        client-certificate: certs/alice.crt
        client-key-data: {KEY_B64}
        as: bob
        as-uid: "1234"
        as-groups: [devs, ops]
        as-user-extra: {{scopes: [view, edit]}}
        auth-provider: {{name: oidc, config: {{client-id: k}}}}
    contexts:
    - name: prod-alice
      context: {{cluster: prod, user: alice, namespace: team-a}}
    current-context: prod-alice
"""
