"""The proxy itself: the request pipeline, access gate, relay, fast path, upgrades and static files."""
