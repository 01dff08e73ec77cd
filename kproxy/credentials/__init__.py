"""Run-time credentials: token files, certificate files, exec plugins and OIDC, kept fresh."""
