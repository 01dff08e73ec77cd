"""The upstream side: dialing (direct, CONNECT, TLS in TLS, SOCKS), connections and the pool."""
