"""What is slow to make and then shared by a whole process (a dictionary, a model), made once even
when many threads ask for it at the same moment.

functools.lru_cache lets every thread that asks before the first answer is stored compute it too:
twenty questions reaching a freshly started server built jieba's 580,000-entry table twenty times
over, and the first answer came after 35 s instead of 2 s."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def made_once(maxsize: int | None = 1) -> Callable[[F], F]:
    """lru_cache(maxsize) whose callers wait while one of them makes the value: a decorator for
    functions of hashable arguments that load something heavy. cache_clear() works as lru_cache's."""

    def wrap(fn: F) -> F:
        cached = lru_cache(maxsize=maxsize)(fn)
        lock = threading.RLock()  # (reentrant: a value made from another value of the same function)

        @wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:  # held for a dictionary lookup once the value is made
                return cached(*args, **kwargs)

        call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return wrap
