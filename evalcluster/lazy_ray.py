"""Ray, imported only when a run uses it.

`import ray` takes 0.2-0.4 s of every start, and an in-process run (`--executor local`) never
needs it; yet the modules it runs (the shard code, the provider actor's class, the live-run
registry) also define Ray tasks and actors at import time. They import `ray` from here instead:

- `ray`: the `ray` module, imported on first attribute use; `ray.remote(...)` as a decorator
  keeps the class or function as it is and makes the Ray actor or task on first use
  (`.remote`, `.options`, ...); `ray.is_initialized()` is False without importing Ray when
  nothing has imported it yet (then nothing can have started it).
- `ray_metrics`: `ray.util.metrics` for metrics made at module level or cached: a metric
  records through Ray's when Ray is up in this process, and records nothing otherwise (with no
  Ray there is no metrics agent to export it; Ray's own metrics drop such records too).

Imports nothing of ours.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()


def _ray() -> Any:
    import ray

    return ray


def ray_loaded_and_up() -> bool:
    """Whether Ray is initialized in this process, without importing it."""
    module = sys.modules.get("ray")
    return module is not None and bool(module.is_initialized())


class _Deferred:
    """A class or function that becomes a Ray actor or task (`ray.remote(**options)`) on the
    first use of anything Ray adds to it; `__wrapped__` is the plain class or function."""

    def __init__(self, target: Any, options: dict[str, Any]) -> None:
        self.__wrapped__ = target
        self._options = options
        self._remote: Any = None
        self.__doc__ = getattr(target, "__doc__", None)
        self.__name__ = getattr(target, "__name__", type(target).__name__)
        self.__qualname__ = getattr(target, "__qualname__", self.__name__)
        self.__module__ = getattr(target, "__module__", __name__)

    def _made(self) -> Any:
        if self._remote is None:
            with _lock:
                if self._remote is None:
                    ray = _ray()
                    wrap = ray.remote(**self._options) if self._options else ray.remote
                    self._remote = wrap(self.__wrapped__)
        return self._remote

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__") and name != "__ray_metadata__":
            raise AttributeError(name)
        return getattr(self._made(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._made()(*args, **kwargs)  # Ray's own error: call .remote()

    def __repr__(self) -> str:
        return f"<deferred Ray remote {self.__qualname__}>"


class _LazyRay:
    """The `ray` module, imported on first attribute use (see the module docstring)."""

    def remote(self, *args: Any, **options: Any) -> Any:
        if len(args) == 1 and not options and callable(args[0]):
            return _Deferred(args[0], {})  # bare @ray.remote
        if args:
            raise TypeError("ray.remote takes keyword options only")

        def decorate(target: Any) -> _Deferred:
            return _Deferred(target, options)

        return decorate

    def is_initialized(self) -> bool:
        return ray_loaded_and_up()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return getattr(_ray(), name)


class _LazyMetric:
    """A Ray metric made on the first record while Ray is up; records dropped before that."""

    def __init__(self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._kind = kind
        self._args = args
        self._kwargs = kwargs
        self._metric: Any = None

    def _real(self) -> Any:
        if self._metric is None and ray_loaded_and_up():
            with _lock:
                if self._metric is None:
                    from ray.util import metrics

                    self._metric = getattr(metrics, self._kind)(*self._args, **self._kwargs)
        return self._metric

    def _forward(self, method: str) -> Callable[..., None]:
        def call(*args: Any, **kwargs: Any) -> None:
            metric = self._real()
            if metric is not None:
                getattr(metric, method)(*args, **kwargs)

        return call

    def __getattr__(self, name: str) -> Any:
        if name in ("inc", "set", "observe", "record", "set_default_tags"):
            return self._forward(name)
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        from ray.util import metrics

        metric = self._real() or getattr(metrics, self._kind)(*self._args, **self._kwargs)
        return getattr(metric, name)


class _LazyMetrics:
    """`ray.util.metrics`' metric types, as `_LazyMetric`s."""

    def Counter(self, *args: Any, **kwargs: Any) -> _LazyMetric:  # noqa: N802 - Ray's names
        return _LazyMetric("Counter", args, kwargs)

    def Gauge(self, *args: Any, **kwargs: Any) -> _LazyMetric:  # noqa: N802
        return _LazyMetric("Gauge", args, kwargs)

    def Histogram(self, *args: Any, **kwargs: Any) -> _LazyMetric:  # noqa: N802
        return _LazyMetric("Histogram", args, kwargs)


ray: Any = _LazyRay()
ray_metrics: Any = _LazyMetrics()
