"""Property-based tests of the readers: random bytes and damaged files never
raise anything but the project's own input errors (ValueError and its
subclasses, such as FlowFileError), which the binaries turn into one line."""

import os
import tempfile

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvo_tf.data import flow as flow_lib
from lvo_tf.data import readers
from lvo_tf.evaluation import davis_eval

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_files():
    """Bytes of a valid PNG, JPEG and .flo, to damage."""
    rng = np.random.default_rng(0)
    image = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    png = cv2.imencode(".png", image)[1].tobytes()
    jpg = cv2.imencode(".jpg", image)[1].tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f.flo")
        flow_lib.write_flo(path, rng.normal(size=(6, 8, 2)).astype(np.float32))
        flo = open(path, "rb").read()
    return {"png": png, "jpg": jpg, "flo": flo}


VALID = _valid_files()


@st.composite
def damaged(draw):
    """(bytes, extension): random bytes, or a valid file truncated, with
    bytes overwritten, or both; under its own extension or another one."""
    kind = draw(st.sampled_from(sorted(VALID)))
    data = bytearray(VALID[kind])
    how = draw(st.sampled_from(["random", "truncate", "flip", "both"]))
    if how == "random":
        data = bytearray(draw(st.binary(max_size=512)))
    if how in ("truncate", "both"):
        data = data[: draw(st.integers(0, len(data)))]
    if how in ("flip", "both") and data:
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
    ext = draw(st.sampled_from([kind, "png", "jpg", "flo"]))
    return bytes(data), ext


def _call(function, data: bytes, ext: str):
    """function(path) on a file holding `data`: its result, or the
    ValueError it raised (anything else fails the test)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x." + ext)
        with open(path, "wb") as f:
            f.write(data)
        try:
            return function(path)
        except ValueError as e:
            assert str(e), "an input error must say what is wrong"
            assert path in str(e) or "x." + ext in str(e), f"error does not name the file: {e}"
            return e


@SETTINGS
@given(damaged())
def test_frame_readers_raise_only_input_errors(sample):
    data, ext = sample
    for reader in (readers.read_frame, readers.frame_size, readers.check_frame_file):
        result = _call(reader, data, ext)
        if reader is readers.read_frame and not isinstance(result, ValueError):
            assert result.dtype == np.uint8 and result.ndim == 3 and result.shape[-1] == 3


@SETTINGS
@given(damaged())
def test_mask_readers_raise_only_input_errors(sample):
    data, ext = sample
    for reader in (readers.read_annotation, davis_eval.read_mask):
        result = _call(reader, data, ext)
        if not isinstance(result, ValueError):
            mask = result[0]
            assert mask.dtype == bool and mask.ndim == 2


@SETTINGS
@given(damaged())
def test_flo_reader_raises_only_flow_file_errors(sample):
    data, ext = sample
    result = _call(flow_lib.read_flo, data, ext)
    if isinstance(result, ValueError):
        assert isinstance(result, flow_lib.FlowFileError)
    else:
        assert result.dtype == np.float32 and result.shape[-1] == 2
        assert np.all(np.isfinite(result))


@SETTINGS
@given(st.lists(st.text(max_size=60), max_size=6))
def test_split_files_raise_only_input_errors(lines):
    """Any text as an image set: sequences are found, or a ValueError /
    FileNotFoundError names the split file or the frame it lists."""
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "JPEGImages", "480p", "a"))
        cv2.imwrite(os.path.join(tmp, "JPEGImages", "480p", "a", "00000.jpg"), np.zeros((8, 8, 3)))
        os.makedirs(os.path.join(tmp, "ImageSets", "480p"))
        with open(os.path.join(tmp, "ImageSets", "480p", "s.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
        try:
            found = readers.davis_sequences(tmp, "s")
        except (ValueError, FileNotFoundError) as e:
            assert "s.txt" in str(e) or "'s'" in str(e) or tmp in str(e), str(e)
        else:
            assert [s.name for s in found] == ["a"]


@SETTINGS
@given(st.binary(max_size=300))
def test_split_file_bytes_raise_only_input_errors(data):
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "JPEGImages", "480p", "a"))
        os.makedirs(os.path.join(tmp, "ImageSets", "480p"))
        with open(os.path.join(tmp, "ImageSets", "480p", "s.txt"), "wb") as f:
            f.write(data)
        try:
            readers.davis_sequences(tmp, "s")
        except (ValueError, FileNotFoundError):
            pass
