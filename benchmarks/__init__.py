"""kproxy vs ``kubectl proxy`` vs direct access, measured side by side in one run.

``python -m benchmarks`` (or ``--quick``) sets up nginx as a TLS, client-certificate,
HTTP/2 API-server stand-in plus a small upstream program for watches and exec-style
upgrades, then runs interleaved rounds and writes Markdown, JSON and a PNG chart under
``benchmarks/results/``. See ``benchmarks/README.md``.

Modules: ``cli`` and ``config`` (presets, overrides), ``deps`` (installs nginx, wrk,
matplotlib on demand), ``pki`` and ``payloads`` (files the upstream serves), ``nginx``
and ``upstream`` (the API-server stand-in), ``environment`` (all of it, set up and torn
down), ``procs`` (processes by PID, /proc readings), ``noise``, ``wrk``, ``clients``
(asyncio watch/upgrade/start-up clients), ``targets``, ``scenarios``, ``runner``,
``report``, ``chart``, ``progress``; ``profile`` is ``python -m benchmarks.profile``,
``memory`` is ``python -m benchmarks.memory`` (slow readers' cost in RSS).
"""
