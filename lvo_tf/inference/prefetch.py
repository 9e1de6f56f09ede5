"""Preparing a video's inputs on a background thread while the network runs.

Reading, resizing and optical flow (OpenCV, which releases the GIL) for the
frames ahead run on one worker thread while TensorFlow runs the streams and
memory on the frames already prepared, so `segment` does not wait for flow
between windows:

    inputs = Prefetcher(prepare, length=len(stems), ahead=32)
    item = inputs.get(t)   # prepare(t), computed ahead, in order
    inputs.close()

`prepare(t)` is called once per index, in increasing order, on the worker,
and never at the same time as another `prepare` call (it may keep state).
`get` blocks until its index is ready (the time blocked is reported as
`wait_seconds`) and re-raises the worker's exception. Only the last `keep`
prepared items are kept (`keep` > `ahead`, so nothing is dropped before it
is asked for); asking again for an evicted index prepares it again on the
caller's thread. Every index up to the highest asked for is prepared, also
ones never asked for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _KeptInputs(Generic[T]):
    """What both ways of preparing inputs share: items prepared in order,
    only the last `keep` kept, bounds checked, used as a context manager."""

    def __init__(self, prepare: Callable[[int], T], length: int, keep: int = 64):
        self._prepare = prepare
        self._length = length
        self._keep = keep
        self._items: dict[int, T] = {}
        self._next = 0  # the next index to prepare
        self.wait_seconds = 0.0

    def _check(self, t: int) -> None:
        if not 0 <= t < self._length:
            raise IndexError(f"frame {t} outside the video's {self._length} frames")

    def _store(self, t: int, item: T) -> None:
        """Keeps item t (the next index) and drops those older than `keep`."""
        self._items[t] = item
        self._next = t + 1
        for old in [k for k in self._items if k < self._next - self._keep]:
            del self._items[old]

    def close(self) -> None:
        self._items.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Prefetcher(_KeptInputs[T]):
    def __init__(self, prepare: Callable[[int], T], length: int, ahead: int = 32, keep: int = 64):
        if not 1 <= ahead < keep:
            raise ValueError(f"need 1 <= ahead < keep; got ahead={ahead}, keep={keep}")
        super().__init__(prepare, length, keep)
        self._ahead = ahead
        self._asked = -1  # the highest index asked for
        self._error: BaseException | None = None
        self._closed = False
        self._cond = threading.Condition()
        self._prepare_lock = threading.Lock()  # prepare() never runs twice at once
        self._thread = threading.Thread(target=self._work, name="lvo-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._closed and self._next > self._asked + self._ahead:
                    self._cond.wait()
                if self._closed or self._next >= self._length:
                    return
                t = self._next
            try:
                with self._prepare_lock:
                    item = self._prepare(t)
            except BaseException as e:  # handed to the caller of get()
                with self._cond:
                    self._error = e
                    self._cond.notify_all()
                return
            with self._cond:
                self._store(t, item)
                self._cond.notify_all()

    def get(self, t: int) -> T:
        self._check(t)
        with self._cond:
            if t > self._asked:
                self._asked = t
                self._cond.notify_all()
            start = time.perf_counter()
            while t not in self._items and t >= self._next - self._keep:
                if self._error is not None:
                    raise self._error
                if self._closed:
                    raise RuntimeError("Prefetcher is closed")
                self._cond.wait()
            self.wait_seconds += time.perf_counter() - start
            if t in self._items:
                return self._items[t]
        with self._prepare_lock:  # evicted: prepare it again here
            return self._prepare(t)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        super().close()


class InlineInputs(_KeptInputs[T]):
    """`Prefetcher`'s interface with no thread: `get(t)` prepares every index
    up to t in order on the caller's thread (and `wait_seconds` is that
    time), keeping the last `keep`."""

    def get(self, t: int) -> T:
        self._check(t)
        start = time.perf_counter()
        if t < self._next - self._keep:
            item = self._prepare(t)
        else:
            while self._next <= t:
                self._store(self._next, self._prepare(self._next))
            item = self._items[t]
        self.wait_seconds += time.perf_counter() - start
        return item
