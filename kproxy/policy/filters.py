"""kubectl proxy's request filter: four regex lists → a verdict per API request.

In: the four raw flag values (``--accept-paths``, ``--reject-paths``, ``--accept-hosts``,
``--reject-methods``), once at start-up; then per request the method as sent, the decoded
prefix-stripped path (from ``kproxy.policy.routing``) and the raw Host value.
Out: a :class:`Verdict` — allowed, or rejected with the rule that rejected it (for logs).

Semantics are kubectl 1.32's ``pkg/proxy/proxy_server.go`` (docs/kubectl-proxy.md §5):

* each flag value is split on every ``,`` with no trimming; ``""`` is an empty list;
* patterns are Go RE2, matched as an unanchored search (Go ``regexp.MatchString``);
* a request is rejected if its path matches any reject-paths pattern, its method matches
  any reject-methods pattern, its path matches no accept-paths pattern, or its host matches
  no accept-hosts pattern (kubectl's order). So an empty accept list rejects everything and
  an empty reject list rejects nothing.

Deliberate differences from kubectl (docs/kubectl-proxy.md §11):

* an empty element (``"POST,"``, ``"a,,b"``) is a :class:`~kproxy.errors.ConfigError`
  instead of a silent match-everything pattern;
* an invalid pattern names its flag (kubectl: ``Error compiling re: …`` and exit 255);
* IPv6 hosts are tried with and without brackets (kubernetes#77496), see :func:`host_candidates`.

Only the standard library and ``re2`` (google-re2, the same RE2 dialect as Go) are used;
no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

import re2

from kproxy.errors import ConfigError
from kproxy.policy.gonet import split_host_port

__all__ = [
    "DEFAULT_ACCEPT_HOSTS",
    "DEFAULT_ACCEPT_PATHS",
    "DEFAULT_REJECT_METHODS",
    "DEFAULT_REJECT_PATHS",
    "RequestFilter",
    "Verdict",
    "compile_pattern",
    "host_candidates",
    "split_patterns",
]

# kubectl's defaults (pkg/cmd/proxy/proxy.go), byte for byte.
DEFAULT_ACCEPT_PATHS = "^.*"
DEFAULT_REJECT_PATHS = "^/api/.*/pods/.*/exec,^/api/.*/pods/.*/attach"
DEFAULT_ACCEPT_HOSTS = r"^localhost$,^127\.0\.0\.1$,^\[::1\]$"
DEFAULT_REJECT_METHODS = "^$"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The filter's answer. ``rule`` says which check rejected; ``None`` when allowed."""

    allowed: bool
    rule: str | None = None


_ALLOWED = Verdict(True, None)


def split_patterns(flag: str, value: str) -> tuple[str, ...]:
    """Split a flag value into patterns the way kubectl does: on every comma, no trimming.

    ``""`` is the empty list (kubectl since kubernetes#99616). kubectl compiles an empty
    element to the empty regex, which matches everything; that is almost always a stray
    comma, so kproxy refuses it.
    """
    if value == "":
        return ()
    patterns = tuple(value.split(","))
    if "" in patterns:
        kept = ",".join(p for p in patterns if p)
        right = (
            f"did you mean {flag}={kept!r}?"
            if kept
            else f"use {flag}='' for an empty list, or {flag}='.*' to match everything"
        )
        raise ConfigError(
            f"{flag}: {value!r} contains an empty pattern (a leading, trailing or doubled comma);"
            f" an empty pattern matches everything; {right}"
        )
    return patterns


def compile_pattern(flag: str, pattern: str) -> Any:
    """One Go RE2 pattern compiled; an invalid one raises ConfigError naming ``flag``."""
    return _compile_one(flag, pattern)


def _compile_one(flag: str, pattern: str) -> Any:
    _reject_non_go_syntax(flag, pattern)
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ConfigError(
            f"{flag}: invalid regular expression {pattern!r}: {reason}"
            " (patterns use Go RE2 syntax: no lookaround, no backreferences)"
        ) from exc


def _reject_non_go_syntax(flag: str, pattern: str) -> None:
    # C++ RE2 accepts \C (match any byte); Go's regexp does not, so kubectl exits on it.
    i, n = 0, len(pattern)
    while i < n - 1:
        if pattern[i] != "\\":
            i += 1
            continue
        nxt = pattern[i + 1]
        if nxt == "Q":  # \Q...\E quotes everything up to \E (or the end)
            end = pattern.find("\\E", i + 2)
            i = n if end < 0 else end + 2
            continue
        if nxt == "C":
            raise ConfigError(
                f"{flag}: invalid regular expression {pattern!r}: invalid escape sequence: \\C"
                " (patterns use Go RE2 syntax)"
            )
        i += 2


# The RE2 library logs parse errors to stderr by default; we report them ourselves.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False

# Patterns that match every string under unanchored search: skip the regex call.
_MATCHES_EVERYTHING = frozenset({"^", "$", ".*", "^.*", "(?s).*", "^(?s).*", "(?s)^.*"})

# ``^literal$`` where literal is plain characters or backslash-escaped punctuation (RE2 reads
# an escaped non-word ASCII character as itself). Without (?m), ^ and $ are the start and end
# of the text (Go: \A and \z), so such a pattern matches exactly one string: a set lookup.
_ANCHORED_LITERAL = re.compile(r"""\^((?:[A-Za-z0-9 _\-/:@!%=~'"<>&;#]|\\[!-/:-@\[-`{-~])*)\$""")
_ESCAPE = re.compile(r"\\(.)")


class _PatternList:
    """One flag's compiled patterns, arranged for a fast yes/no and a slow "which one"."""

    __slots__ = ("_combined", "_compiled", "_everything", "_literals", "flag", "patterns")

    def __init__(self, flag: str, value: str) -> None:
        self.flag = flag
        self.patterns = split_patterns(flag, value)
        # Compile each pattern on its own first: that validates it and gives re2's reason.
        self._compiled = tuple(_compile_one(flag, p) for p in self.patterns)
        self._everything = any(p in _MATCHES_EVERYTHING for p in self.patterns)
        literals: set[str] = set()
        rest: list[str] = []
        for pattern, compiled in zip(self.patterns, self._compiled):
            m = _ANCHORED_LITERAL.fullmatch(pattern)
            literal = _ESCAPE.sub(r"\1", m.group(1)) if m else None
            # Belt and braces: the literal reading must agree with RE2's own.
            if literal is not None and compiled.fullmatch(literal) is not None:
                literals.add(literal)
            else:
                rest.append(pattern)
        self._literals = frozenset(literals)
        # One alternation searched once. (RE2::Set would be a little faster, but its
        # Python wrapper reports "no match" when the DFA runs out of memory, which would
        # let a rejected path through; a plain search falls back to the NFA instead.)
        self._combined: Any = None
        if rest and not self._everything:
            try:
                self._combined = re2.compile("|".join(f"(?:{p})" for p in rest), _OPTIONS)
            except re2.error as exc:
                raise ConfigError(
                    f"{flag}: the patterns {value!r} are too large to compile together; use fewer or simpler patterns"
                ) from exc

    def matches(self, text: str) -> bool:
        if self._everything or text in self._literals:
            return True
        if self._combined is None:
            return False
        try:
            return self._combined.search(text) is not None
        except UnicodeEncodeError:
            return self._combined.search(_go_text(text)) is not None

    def first_match(self, text: str) -> str | None:
        """The first pattern, in flag order, that matches (kubectl tests them in order)."""
        for pattern, compiled in zip(self.patterns, self._compiled):
            try:
                found = compiled.search(text)
            except UnicodeEncodeError:
                found = compiled.search(_go_text(text))
            if found is not None:
                return str(pattern)
        return None


def _go_text(text: str) -> str:
    # A path decoded with surrogateescape carries undecodable bytes as lone surrogates,
    # which re2 cannot encode. Go's regexp reads each invalid UTF-8 byte as U+FFFD; do the same.
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class RequestFilter:
    """kubectl's FilterServer decision, compiled once and asked once per API request."""

    __slots__ = ("_accept_hosts", "_accept_paths", "_reject_methods", "_reject_paths")

    def __init__(
        self,
        accept_paths: _PatternList,
        reject_paths: _PatternList,
        accept_hosts: _PatternList,
        reject_methods: _PatternList,
    ) -> None:
        self._accept_paths = accept_paths
        self._reject_paths = reject_paths
        self._accept_hosts = accept_hosts
        self._reject_methods = reject_methods

    @classmethod
    def compile(
        cls,
        *,
        accept_paths: str,
        reject_paths: str,
        accept_hosts: str,
        reject_methods: str,
    ) -> RequestFilter:
        """Build a filter from the four raw flag values; bad values raise ConfigError."""
        return cls(
            _PatternList("--accept-paths", accept_paths),
            _PatternList("--reject-paths", reject_paths),
            _PatternList("--accept-hosts", accept_hosts),
            _PatternList("--reject-methods", reject_methods),
        )

    def verdict(self, method: str, path: str, host: str) -> Verdict:
        """Decide one request (docs/kubectl-proxy.md §5.4, in kubectl's order).

        ``method`` as sent (case preserved), ``path`` decoded and prefix-stripped without the
        query, ``host`` the raw Host value (or absolute-URI host), possibly with a port.
        """
        reject_paths = self._reject_paths
        if reject_paths.matches(path):
            return Verdict(False, f"reject-paths {reject_paths.first_match(path)}")
        reject_methods = self._reject_methods
        if reject_methods.matches(method):
            return Verdict(False, f"reject-methods {reject_methods.first_match(method)}")
        if not self._accept_paths.matches(path):
            return Verdict(False, "accept-paths (no pattern matched)")
        if self.allows_host(host):
            return _ALLOWED
        return Verdict(False, f"accept-hosts (no pattern matched host {_reduce_host(host)!r})")

    def rejects_method(self, method: str) -> bool:
        """The reject-methods check alone (which methods a CORS preflight may be granted)."""
        return self._reject_methods.matches(method)

    def allows_host(self, host: str) -> bool:
        """The accept-hosts check alone (kproxy also applies it to static files).

        ``host`` is the raw Host value; accepted if any of :func:`host_candidates` matches.
        """
        accept_hosts = self._accept_hosts
        reduced = _reduce_host(host)
        if accept_hosts.matches(reduced):
            return True
        if ":" in reduced:  # only IPv6 literals have a second candidate
            return any(accept_hosts.matches(c) for c in host_candidates(host)[1:])
        return False


def _reduce_host(hostport: str) -> str:
    """kubectl's extractHost: the host of Go's ``net.SplitHostPort``, else the whole value.

    The port is not validated (``localhost:abc`` → ``localhost``); brackets are removed only
    when a port follows (``[::1]:80`` → ``::1``; ``[::1]`` fails to split: missing port).
    """
    split = split_host_port(hostport)
    return hostport if split is None else split[0]


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def host_candidates(host: str) -> tuple[str, ...]:
    """The strings the accept-hosts patterns are tried against; any match accepts.

    The first is kubectl's own reduction (docs/kubectl-proxy.md §5.2): the host of a ``host:port`` split
    by Go's rules, otherwise the whole value. For an IPv6 literal kproxy adds the other
    bracketing (kubernetes#77496), so the default ``^\\[::1\\]$`` and a user's ``^::1$`` both
    work whatever the client sent:

    * ``[::1]:8001`` → ``("::1", "[::1]")`` (kubectl: ``::1`` only, rejected by default)
    * ``[::1]`` → ``("[::1]", "::1")``
    * ``::1`` → ``("::1", "[::1]")`` (kubectl rejects it by default; kproxy accepts it — the
      client did ask for the loopback address)
    * anything else, e.g. ``localhost:8001`` → ``("localhost",)``
    """
    reduced = _reduce_host(host)
    if reduced.startswith("[") and reduced.endswith("]"):
        inner = reduced[1:-1]
        if _is_ipv6(inner):
            return (reduced, inner)
    elif ":" in reduced and _is_ipv6(reduced):
        return (reduced, f"[{reduced}]")
    return (reduced,)
