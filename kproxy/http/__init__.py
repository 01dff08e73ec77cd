"""The client-facing HTTP/1.1 server; it imports nothing of kproxy's proxying."""
