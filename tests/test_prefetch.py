"""The input prefetcher of `segment`: order, overlap, errors, bounds."""

import threading
import time

import numpy as np
import pytest

from lvo_tf.inference.prefetch import InlineInputs, Prefetcher
from lvo_tf.inference.run import input_preparer
from lvo_tf.inference.segmenter import StageTimes


class Recorder:
    def __init__(self, delay=0.0, fail_at=None):
        self.calls, self.threads = [], []
        self.delay, self.fail_at = delay, fail_at

    def __call__(self, t):
        if t == self.fail_at:
            raise KeyError(f"no frame {t}")
        time.sleep(self.delay)
        self.calls.append(t)
        self.threads.append(threading.current_thread().name)
        return t * t


def test_items_in_order_once_each_on_the_worker():
    prepare = Recorder()
    with Prefetcher(prepare, length=20, ahead=4, keep=8) as p:
        got = [p.get(t) for t in range(20)]
        got += [p.get(t) for t in range(15, 20)]  # looking back within `keep`
    assert got == [t * t for t in range(20)] + [t * t for t in range(15, 20)]
    assert prepare.calls == list(range(20))
    assert set(prepare.threads) == {"lvo-prefetch"}


def test_preparation_overlaps_the_consumer():
    n, delay = 10, 0.05
    prepare = Recorder(delay=delay)
    start = time.perf_counter()
    with Prefetcher(prepare, length=n, ahead=3, keep=6) as p:
        for t in range(n):
            p.get(t)
            time.sleep(delay)  # the "network"
    elapsed = time.perf_counter() - start
    assert elapsed < 0.8 * (2 * n * delay)  # sequential would take 2 * n * delay
    assert p.wait_seconds < 0.5 * n * delay  # mostly prepared before it was asked for


def test_runs_at_most_ahead_of_the_consumer():
    prepare = Recorder()
    with Prefetcher(prepare, length=100, ahead=5, keep=10) as p:
        p.get(2)
        time.sleep(0.2)
        assert max(prepare.calls) == 2 + 5
        p.get(30)
        time.sleep(0.2)
        assert max(prepare.calls) == 30 + 5


def test_evicted_items_are_prepared_again_on_the_callers_thread():
    prepare = Recorder()
    with Prefetcher(prepare, length=40, ahead=2, keep=5) as p:
        assert p.get(30) == 900
        assert p.get(3) == 9
    again = [k for k, t in enumerate(prepare.calls) if t == 3][1]
    assert prepare.threads[again] == threading.current_thread().name


def test_worker_errors_reach_the_caller():
    with Prefetcher(Recorder(fail_at=6), length=10, ahead=2, keep=4) as p:
        assert [p.get(t) for t in range(6)] == [t * t for t in range(6)]
        with pytest.raises(KeyError, match="no frame 6"):
            p.get(6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="ahead < keep"):
        Prefetcher(Recorder(), length=3, ahead=4, keep=4)
    with (
        Prefetcher(Recorder(), length=3, ahead=1, keep=2) as p,
        pytest.raises(IndexError, match="outside the video's 3 frames"),
    ):
        p.get(3)


def test_input_preparer_reads_each_frame_once_and_gives_flow_the_shrunk_frames():
    video = np.arange(6 * 8 * 10 * 3, dtype=np.uint8).reshape(6, 8, 10, 3)
    loads = []

    def load(i):
        loads.append(i)
        return video[i]

    def shrink(f):
        return f[::2, ::2]

    def flow_field(t, frame):
        j = min(t + 1, len(video) - 1)
        return (frame(j).astype(np.float32) - frame(t))[..., :2]

    times = StageTimes()
    prepare = input_preparer(load, shrink, flow_field, times)
    with Prefetcher(prepare, length=len(video), ahead=2, keep=4) as p:
        items = [p.get(t) for t in range(len(video))]
    assert loads == list(range(len(video)))
    for t, item in enumerate(items):
        np.testing.assert_array_equal(item.original, video[t])
        np.testing.assert_array_equal(item.frame, video[t, ::2, ::2])
        j = min(t + 1, len(video) - 1)
        expected = (video[j, ::2, ::2].astype(np.float32) - video[t, ::2, ::2])[..., :2]
        np.testing.assert_array_equal(item.flow, expected)
    assert times.read > 0 and times.flow >= 0


def test_inline_inputs_prepare_in_order_on_the_callers_thread():
    prepare = Recorder()
    with InlineInputs(prepare, length=12, keep=3) as p:
        assert p.get(4) == 16  # 0..4 prepared, in order
        assert [p.get(t) for t in (2, 3, 4, 11)] == [4, 9, 16, 121]
        assert p.get(0) == 0  # evicted: prepared again
    assert prepare.calls == list(range(12)) + [0]
    assert set(prepare.threads) == {threading.current_thread().name}
    with pytest.raises(IndexError, match="outside"):
        p.get(12)
