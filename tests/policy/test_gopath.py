"""kproxy.policy.gopath: Go's path.Clean and path.Base, as tables.

The rows are the cases Go documents for these functions (the ``path`` package's examples
and its own test table), plus the rooted paths the router and the file server feed in.
"""

from __future__ import annotations

import pytest

from kproxy.policy.gopath import base, clean


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        # Go's ExampleClean
        ("a/c", "a/c"),
        ("a//c", "a/c"),
        ("a/c/.", "a/c"),
        ("a/c/b/..", "a/c"),
        ("/../a/c", "/a/c"),
        ("/../a/b/../././/c", "/a/c"),
        ("", "."),
        # already clean
        ("abc", "abc"),
        ("abc/def", "abc/def"),
        ("a/b/c", "a/b/c"),
        (".", "."),
        ("..", ".."),
        ("../..", "../.."),
        ("../../abc", "../../abc"),
        ("/abc", "/abc"),
        ("/", "/"),
        # trailing slashes go
        ("abc/", "abc"),
        ("abc/def/", "abc/def"),
        ("a/b/c/", "a/b/c"),
        ("./", "."),
        ("../", ".."),
        ("../../", "../.."),
        ("/abc/", "/abc"),
        # doubled slashes go
        ("abc//def//ghi", "abc/def/ghi"),
        ("//abc", "/abc"),
        ("///abc", "/abc"),
        ("//abc//", "/abc"),
        ("abc//", "abc"),
        # . elements go
        ("abc/./def", "abc/def"),
        ("/./abc/def", "/abc/def"),
        ("abc/.", "abc"),
        # .. elements take the one before them; at the root they stop
        ("abc/def/ghi/../jkl", "abc/def/jkl"),
        ("abc/def/../ghi/../jkl", "abc/jkl"),
        ("abc/def/..", "abc"),
        ("abc/def/../..", "."),
        ("/abc/def/../..", "/"),
        ("abc/def/../../..", ".."),
        ("/abc/def/../../..", "/"),
        ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
        ("../../a", "../../a"),
        ("a/../..", ".."),
        ("/..", "/"),
        ("/../..", "/"),
        # combinations
        ("abc/./../def", "def"),
        ("abc//./../def", "def"),
        ("abc/../../././../def", "../../def"),
        # escapes are names, not separators; NUL is the file server's to refuse
        ("/..%2f/x", "/..%2f/x"),
        ("/a\0b", "/a\0b"),
    ],
)
def test_clean(path: str, cleaned: str) -> None:
    assert clean(path) == cleaned
    assert clean(cleaned) == cleaned  # a clean path stays as it is


@pytest.mark.parametrize(
    ("path", "last"),
    [
        # Go's ExampleBase and its test table
        ("/a/b", "b"),
        ("/", "/"),
        ("", "."),
        (".", "."),
        ("/.", "."),
        ("a/b", "b"),
        ("a/b/", "b"),
        ("a/b//", "b"),
        ("abc", "abc"),
        ("//", "/"),
        ("/abc/", "abc"),
        ("/a/./b/..", ".."),  # not cleaned
        ("/./", "."),
    ],
)
def test_base(path: str, last: str) -> None:
    assert base(path) == last


@pytest.mark.parametrize(
    ("path", "cleaned", "last"),
    [
        ("/", "/", "/"),
        ("/a/b/", "/a/b", "b"),
        ("/../x", "/x", "x"),
        ("/a/../../b", "/b", "b"),
        ("/./", "/", "."),
        ("//a//b", "/a/b", "b"),
        ("/a/./b/..", "/a", ".."),
    ],
)
def test_rooted_clean_and_base(path: str, cleaned: str, last: str) -> None:
    # The file server's paths: rooted, so ".." stops at the root.
    assert (clean(path), base(path)) == (cleaned, last)
