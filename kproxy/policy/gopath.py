"""Go's ``path.Clean`` and ``path.Base``: slash-separated paths, lexically.

Pure: strings in, strings out, no filesystem. The router builds net/http's ``cleanPath``
(a rooted path, trailing slash kept) on :func:`clean`; the ``--www`` file server cleans
its request paths with it (a rooted path, so ``..`` stops at the root) and takes
``localRedirect`` targets from :func:`base`.
"""

from __future__ import annotations

__all__ = ["base", "clean"]


def clean(path: str) -> str:
    """Go's ``path.Clean``: the shortest path naming the same thing, lexically.

    Repeated slashes become one, ``.`` elements go, each ``..`` takes the element before
    it with it, and ``..`` at the start of a rooted path is dropped (``/..`` is ``/``);
    a relative path keeps its leading ``..``. No trailing slash except on ``/``, and an
    empty result is ``.``.
    """
    rooted = path.startswith("/")
    kept: list[str] = []
    for element in path.split("/"):
        if element in ("", "."):
            continue
        if element != "..":
            kept.append(element)
        elif kept and kept[-1] != "..":
            kept.pop()
        elif not rooted:
            kept.append("..")  # nothing left to cancel: a relative path climbs out
    joined = "/".join(kept)
    if rooted:
        return "/" + joined
    return joined or "."


def base(path: str) -> str:
    """Go's ``path.Base``: the last element, trailing slashes ignored; ``""`` is ``.``
    and a path of slashes only is ``/``. Nothing is cleaned (``/a/..`` gives ``..``)."""
    if path == "":
        return "."
    return path.rstrip("/").rsplit("/", 1)[-1] or "/"
