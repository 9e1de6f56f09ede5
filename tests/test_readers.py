"""Readers: DAVIS layout, folders, videos, and every kind of bad input."""

import os

import cv2
import numpy as np
import pytest

from lvo_tf.data import readers
from tests.fixtures import dev_set_root, write_davis, write_fbms


@pytest.fixture
def davis(tmp_path, rng):
    root = tmp_path / "davis"
    masks = write_davis(str(root), rng, sequences=("bear", "ant"), frames=4)
    return root, masks


def test_davis_sequences_in_split_order(davis):
    root, masks = davis
    seqs = readers.davis_sequences(str(root), "val")
    assert [s.name for s in seqs] == ["bear", "ant"]
    assert seqs[0].stems == ["00000", "00001", "00002", "00003"]
    assert list(seqs[0].annotation_paths) == seqs[0].stems
    frames = readers.load_frames(seqs[0])
    assert frames.shape == (4, 24, 32, 3) and frames.dtype == np.uint8
    loaded = readers.load_annotations(seqs[0], frames.shape[1:3])
    np.testing.assert_array_equal(loaded["00002"], masks["bear"][2] > 0)
    assert [s.name for s in readers.davis_sequences(str(root), None)] == ["ant", "bear"]
    assert [s.name for s in readers.davis_sequences(str(root), "val", ["ant"])] == ["ant"]


def test_davis_bad_input(davis, tmp_path):
    root, _ = davis
    with pytest.raises(FileNotFoundError, match="no folder"):
        readers.davis_sequences(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="split 'train'"):
        readers.davis_sequences(str(root), "train")
    with pytest.raises(ValueError, match=r"\['cat'\]"):
        readers.davis_sequences(str(root), "val", ["cat"])
    os.makedirs(root / "JPEGImages" / "480p" / "empty")
    with pytest.raises(ValueError, match="'empty' has no frames"):
        readers.davis_sequences(str(root), "all")


def test_frames_of_different_size(davis):
    root, _ = davis
    seq = readers.davis_sequences(str(root), "val", ["bear"])[0]
    cv2.imwrite(seq.frame_paths[2], np.zeros((20, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="00002.jpg' is 32x20 but the first frame is 32x24"):
        readers.load_frames(seq)


def test_annotation_size_mismatch(davis):
    root, _ = davis
    seq = readers.davis_sequences(str(root), "val", ["ant"])[0]
    cv2.imwrite(seq.annotation_paths["00001"], np.zeros((12, 16), np.uint8))
    with pytest.raises(ValueError, match="00001.png' is 16x12 but its frames are 32x24"):
        readers.load_annotations(seq, (24, 32))


def test_truncated_and_corrupt_images(davis):
    root, _ = davis
    seq = readers.davis_sequences(str(root), "val", ["bear"])[0]
    data = open(seq.frame_paths[1], "rb").read()
    with open(seq.frame_paths[1], "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(ValueError, match="00001.jpg' is a truncated JPEG"):
        readers.load_frames(seq)
    with open(seq.annotation_paths["00003"], "wb") as f:
        f.write(b"garbage")
    with pytest.raises(ValueError, match="cannot read annotation .*00003.png"):
        readers.load_annotations(seq, (24, 32))


def test_multi_object_palette_is_binarised_and_logged(davis, monkeypatch):
    root, _ = davis
    seq = readers.davis_sequences(str(root), "val", ["bear"])[0]
    colour = np.zeros((24, 32, 3), np.uint8)
    colour[2:6, 2:6] = (0, 0, 128)  # object 1
    colour[10:14, 20:30] = (0, 128, 0)  # object 2
    cv2.imwrite(seq.annotation_paths["00000"], colour)
    logged = []
    monkeypatch.setattr(readers.logging, "info", lambda msg, *args: logged.append(msg % args))
    masks = readers.load_annotations(seq, (24, 32))
    assert masks["00000"].sum() == 16 + 40
    assert logged == ["sequence bear: multi-object annotations binarised (any object = foreground)"]


def test_frames_folder_and_folder_of_sequences(tmp_path, rng):
    for seq in ("a", "b"):
        os.makedirs(tmp_path / "vids" / seq)
        for i in range(3):
            cv2.imwrite(
                str(tmp_path / "vids" / seq / f"{i:03d}.png"), rng.integers(0, 255, (8, 8, 3))
            )
    seqs = readers.folder_sequences(str(tmp_path / "vids"))
    assert [(s.name, len(s)) for s in seqs] == [("a", 3), ("b", 3)]
    os.makedirs(tmp_path / "none")
    with pytest.raises(ValueError, match="has no frames"):
        readers.frames_folder(str(tmp_path / "none"))


def test_read_video(tmp_path, rng):
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(5)]
    for f in frames:
        writer.write(f)
    writer.release()
    video = readers.read_video(path)
    assert video.shape == (5, 48, 64, 3)
    np.testing.assert_allclose(video.mean(axis=(1, 2, 3)), [40 * i for i in range(5)], atol=3)
    assert readers.read_video(path, max_frames=1).shape == (1, 48, 64, 3)  # one frame is valid
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="junk.mp4"):
        readers.read_video(str(tmp_path / "junk.mp4"))
    with pytest.raises(FileNotFoundError):
        readers.read_video(str(tmp_path / "absent.mp4"))


@pytest.mark.skipif(dev_set_root() is None, reason="DAVIS-2016 dev sequences not on this machine")
def test_dev_set_reads():
    seqs = readers.davis_sequences(dev_set_root(), "val")
    frames = readers.load_frames(seqs[0])
    assert frames.shape[1:] == (480, 854, 3)
    masks = readers.load_annotations(seqs[0], frames.shape[1:3])
    assert len(masks) == len(frames) and any(m.any() for m in masks.values())


def test_fbms_sequences_sparse_ground_truth(tmp_path, rng):
    masks = write_fbms(tmp_path, rng)
    (seq,) = readers.fbms_sequences(str(tmp_path), "Testset")
    assert seq.name == "cars1" and len(seq) == 6
    loaded = readers.load_annotations(seq, (16, 20))
    assert sorted(loaded) == ["cars1_01", "cars1_04"]  # sparse: only the labelled frames
    for stem, mask in masks.items():
        np.testing.assert_array_equal(loaded[stem], mask)
    with pytest.raises(FileNotFoundError, match="Trainingset"):
        readers.fbms_sequences(str(tmp_path))


def test_fbms_bad_definition_files(tmp_path, rng):
    write_fbms(tmp_path, rng)
    definition = tmp_path / "Testset" / "cars1" / "GroundTruth" / "cars1Def.dat"
    text = definition.read_text()
    definition.write_text(text.replace("cars1_04.jpg", "cars1_99.jpg"))
    with pytest.raises(ValueError, match="refers to frame 'cars1_99.jpg'"):
        readers.fbms_sequences(str(tmp_path), "Testset")
    definition.write_text(text.split("Frame number:")[0])
    with pytest.raises(ValueError, match="lists no labelled frames"):
        readers.fbms_sequences(str(tmp_path), "Testset")
    definition.unlink()
    with pytest.raises(ValueError, match=r"expected one \*Def.dat"):
        readers.fbms_sequences(str(tmp_path), "Testset")


def test_shrink_to_height_shrinks_like_opencv_and_never_enlarges(rng):
    frame = rng.integers(0, 256, (48, 80, 3)).astype(np.uint8)
    small = readers.shrink_to_height(frame, 36)
    np.testing.assert_array_equal(small, cv2.resize(frame, (60, 36), interpolation=cv2.INTER_AREA))
    assert readers.shrink_to_height(frame, 48) is frame
    assert readers.shrink_to_height(frame, 360) is frame  # a shorter frame keeps its size
    assert readers.shrink_to_height(frame, None) is frame
    with pytest.raises(ValueError, match="height must be positive"):
        readers.shrink_to_height(frame, 0)
    # shrunk_size gives the size without a frame: 80 * 36 / 48 = 60 columns.
    assert readers.shrunk_size(48, 80, 36) == (36, 60)
    assert readers.shrunk_size(48, 80, 360) == readers.shrunk_size(48, 80, None) == (48, 80)
    assert readers.shrunk_size(480, 854, 240) == (240, 427)  # round(427.0)
    with pytest.raises(ValueError, match="height must be positive"):
        readers.shrunk_size(48, 80, 0)
