"""tests.waiting.until: the tests' one way to wait for a condition, with a hang guard."""

from __future__ import annotations

import pytest

from tests.waiting import until


async def test_returns_once_the_condition_holds_checking_it_again_until_then() -> None:
    checks: list[int] = []

    def third_time() -> bool:
        checks.append(len(checks))
        return len(checks) == 3

    await until(third_time, step=0)
    assert checks == [0, 1, 2]


async def test_a_condition_that_holds_at_once_is_checked_once_even_with_no_time_left() -> None:
    checks: list[str] = []

    def holds() -> bool:
        checks.append("checked")
        return True

    await until(holds, timeout=0)
    assert checks == ["checked"]


async def test_any_true_value_holds() -> None:
    await until(lambda: [1], timeout=0)
    await until(lambda: "x", timeout=0)


async def test_an_async_condition_is_awaited_at_each_check() -> None:
    answers = iter([False, 0, "", True])
    seen: list[object] = []

    async def asked() -> object:
        seen.append(answer := next(answers))
        return answer

    await until(asked, step=0)
    assert seen == [False, 0, "", True]


async def test_never_holding_is_an_assertion_error_naming_what_was_awaited() -> None:
    with pytest.raises(AssertionError, match=r"^not within 0\.05 s: the watch to close$"):
        await until(lambda: False, "the watch to close", timeout=0.05)
    with pytest.raises(AssertionError, match=r"^not within 0 s: the condition$"):
        await until(lambda: None, timeout=0)


async def test_an_async_condition_that_never_holds_fails_the_same_way() -> None:
    async def never() -> bool:
        return False

    with pytest.raises(AssertionError, match=r"^not within 0\.05 s: the rotation$"):
        await until(never, "the rotation", timeout=0.05, step=0.01)


async def test_a_callable_what_shows_the_state_when_the_wait_gave_up() -> None:
    state = ["at the start"]

    def condition() -> bool:
        state[0] = "when it gave up"
        return False

    with pytest.raises(AssertionError, match=r"^not within 0 s: \['when it gave up'\]$"):
        await until(condition, lambda: state, timeout=0)


async def test_an_error_in_the_condition_is_not_swallowed() -> None:
    def broken() -> bool:
        raise KeyError("oops")

    with pytest.raises(KeyError, match="oops"):
        await until(broken)
