"""Convolutional GRU: the visual memory of LVO."""

from __future__ import annotations

import keras
from keras import activations, initializers, ops, regularizers

# The loop that keras.layers.RNN itself runs (masking, unroll, go_backwards,
# tf.while_loop in graph mode). Keras does not re-export it publicly; keras is
# pinned in requirements.txt.
from keras.src.backend import rnn as _keras_rnn

_PACKAGE = "lvo_tf"


def _standardize_kernel_size(kernel_size) -> tuple[int, int]:
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    kernel_size = tuple(int(k) for k in kernel_size)
    if len(kernel_size) != 2 or min(kernel_size) < 1:
        raise ValueError(
            "ConvGRU `kernel_size` must be a positive int or a pair of positive "
            f"ints. Received: kernel_size={kernel_size}"
        )
    return kernel_size


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvGRUCell(keras.layers.Layer):
    """One step of a convolutional GRU (Tokmakov et al., ICCV 2017, Eq. 1-4).

    For an input frame `x_t` [B, H, W, C] and the previous memory `h_{t-1}`
    [B, H, W, F]:

        z_t  = sigmoid(W_xz * x_t + W_hz * h_{t-1} + b_z)
        r_t  = sigmoid(W_xr * x_t + W_hr * h_{t-1} + b_r)
        h~_t = tanh(W_xh * x_t + W_hh * (r_t . h_{t-1}) + b_h)
        h_t  = (1 - z_t) . h_{t-1} + z_t . h~_t

    where `*` is a 2-D convolution with "same" padding. Weights are stored as
    `kernel` (k, k, C, 3F), `recurrent_kernel` (k, k, F, 3F) and `bias` (3F,)
    with gate order [z, r, h] along the last axis, as in `keras.layers.GRU`.

    The step is split in two so that a sequence layer can hoist the part that
    does not depend on the memory: `input_projection(x)` computes
    `W_x* x + b` for the three gates, and `recurrent_step(x_proj, h)` does the
    rest. Inside the step, the z and r recurrent terms are one convolution.

    Args:
        filters: Number of memory channels F.
        kernel_size: Int or pair, size of all six convolutions. Default 7.
        padding: Only `"same"`: the memory keeps the frame size.
        activation: Activation of the candidate memory. Default `"tanh"`.
        recurrent_activation: Activation of the gates. Default `"sigmoid"`.
        kernel_initializer: Initializer of `kernel`.
        recurrent_initializer: Initializer of `recurrent_kernel`.
        bias_initializer: Initializer of `bias`.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: Optional
            regularizers of the three weights.

    Call arguments:
        inputs: Frame features, [B, H, W, C].
        states: A list with one tensor, the previous memory [B, H, W, F].

    Returns:
        `(h_t, [h_t])`.
    """

    def __init__(
        self,
        filters: int,
        kernel_size=7,
        padding: str = "same",
        activation="tanh",
        recurrent_activation="sigmoid",
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(filters) < 1:
            raise ValueError(f"ConvGRU `filters` must be a positive int. Received: {filters}")
        if str(padding).lower() != "same":
            raise ValueError(
                "ConvGRU only supports padding='same' (the memory must keep the "
                f"frame size from step to step). Received: padding={padding!r}"
            )
        self.filters = int(filters)
        self.kernel_size = _standardize_kernel_size(kernel_size)
        self.padding = "same"
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        # The memory is [H, W, F] with H, W known only at call time.
        self.state_size = -1
        self.input_dim = None

    def build(self, input_shape, states_shape=None):
        if len(input_shape) != 4:
            raise ValueError(
                "ConvGRUCell expects one frame of rank 4 [batch, height, width, "
                f"channels]. Received input shape: {tuple(input_shape)}"
            )
        if input_shape[-1] is None:
            raise ValueError(
                "ConvGRUCell needs a known channel count (last axis). Received "
                f"input shape: {tuple(input_shape)}"
            )
        self.input_dim = int(input_shape[-1])
        f3 = 3 * self.filters
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (self.input_dim, f3),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=self.kernel_size + (self.filters, f3),
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
        )
        self.bias = self.add_weight(
            name="bias",
            shape=(f3,),
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
        )

    def check_channels(self, channels, what: str = "input") -> None:
        if channels is not None and self.input_dim is not None and int(channels) != self.input_dim:
            raise ValueError(
                f"{self.name} was built for {self.input_dim} input channels but "
                f"the {what} has {int(channels)}."
            )

    def input_projection(self, x):
        # x: [N, H, W, C] -> [N, H, W, 3F], the h-independent part of all gates.
        return ops.conv(x, self.kernel, padding="same") + self.bias

    def recurrent_step(self, x_proj, h_prev, recurrent_kernel=None):
        # x_proj: [B, H, W, 3F]; h_prev: [B, H, W, F]. `recurrent_kernel` may be
        # passed as a tensor (gradient checkpointing needs explicit inputs).
        f = self.filters
        kernel = self.recurrent_kernel if recurrent_kernel is None else recurrent_kernel
        x_z, x_r, x_h = ops.split(x_proj, 3, axis=-1)
        h_zr = ops.conv(h_prev, kernel[..., : 2 * f], padding="same")
        h_z, h_r = ops.split(h_zr, 2, axis=-1)
        z = self.recurrent_activation(x_z + h_z)
        r = self.recurrent_activation(x_r + h_r)
        h_h = ops.conv(r * h_prev, kernel[..., 2 * f :], padding="same")
        candidate = self.activation(x_h + h_h)
        return (1.0 - z) * h_prev + z * candidate

    def call(self, inputs, states, training=False):
        self.check_channels(inputs.shape[-1])
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        h = self.recurrent_step(self.input_projection(inputs), h_prev)
        return h, [h]

    def compute_output_shape(self, input_shape, states_shape=None):
        shape = tuple(input_shape[:-1]) + (self.filters,)
        return shape, [shape]

    def get_config(self):
        config = {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "padding": self.padding,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }
        return {**super().get_config(), **config}


_CELL_ARGS = (
    "filters",
    "kernel_size",
    "padding",
    "activation",
    "recurrent_activation",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvGRU(keras.layers.RNN):
    """Convolutional GRU over a clip of feature maps, any size and length.

    Runs `ConvGRUCell` over the time axis. Batch, clip length, height and
    width may all be unknown until call time: the zero initial memory is
    built from the input's dynamic shape. The input-to-gate convolution does
    not depend on the memory, so it is computed for all frames at once
    (time folded into batch) before the recurrence; only the two
    memory-dependent convolutions run inside the loop.

    Args:
        filters: Number of memory channels F.
        kernel_size: Int or pair, size of all six convolutions. Default 7.
        padding: Only `"same"`.
        return_sequences: Return the memory at every step
            ([B, T, H, W, F]) instead of the last one ([B, H, W, F]).
        return_state: Also return the last memory.
        go_backwards: Process the clip from the last frame to the first.
            With `return_sequences`, outputs are in processing order (as
            `keras.layers.RNN` does; `Bidirectional` flips them back).
        unroll: Unroll the loop (needs a static clip length).
        recompute: Gradient checkpointing (`tf.recompute_grad`) of each step:
            the backward pass keeps only each step's input and memory and
            recomputes the gates, trading time for memory on long clips.
        **kwargs: Cell arguments (`activation`, `recurrent_activation`,
            initializers, regularizers) and base layer arguments.

    Call arguments:
        sequences: [B, T, H, W, C].
        initial_state: Optional memory [B, H, W, F] (or a one-item list), e.g.
            carried over from the previous window of a stream.
        mask: Optional [B, T] boolean mask of valid steps.

    Input shape:
        5-D tensor [batch, time, height, width, channels].

    Output shape:
        [B, T, H, W, F] with `return_sequences`, else [B, H, W, F]; with
        `return_state`, a list `[output, last_memory]`.

    References:
        Tokmakov, Alahari, Schmid. Learning Video Object Segmentation with
        Visual Memory. ICCV 2017.

    Example:

    >>> memory = keras.layers.Bidirectional(
    ...     ConvGRU(64, 7, return_sequences=True), merge_mode="concat")
    >>> y = memory(np.zeros((1, 14, 60, 107, 129), "float32"))  # [1, 14, 60, 107, 128]
    """

    def __init__(
        self,
        filters: int,
        kernel_size=7,
        padding: str = "same",
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        unroll: bool = False,
        recompute: bool = False,
        **kwargs,
    ):
        self.recompute = bool(recompute)
        cell_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _CELL_ARGS}
        if kwargs.pop("stateful", False):
            raise ValueError(
                "ConvGRU does not support stateful=True; pass the previous "
                "memory as `initial_state` instead."
            )
        cell = ConvGRUCell(
            filters,
            kernel_size=kernel_size,
            padding=padding,
            name="conv_gru_cell",
            dtype=kwargs.get("dtype"),
            **cell_kwargs,
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            unroll=unroll,
            **kwargs,
        )

    def _check_sequences(self, shape) -> None:
        if len(shape) != 5:
            raise ValueError(
                f"{self.name} expects input of rank 5 [batch, time, height, "
                f"width, channels]. Received shape: {tuple(shape)}"
            )
        if shape[-1] is None:
            raise ValueError(
                f"{self.name} needs a known channel count (last axis). Received "
                f"shape: {tuple(shape)}"
            )

    def build(self, sequences_shape, initial_state_shape=None):
        self._check_sequences(sequences_shape)
        super().build(sequences_shape, initial_state_shape)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        self._check_sequences(sequences.shape)
        self.cell.check_channels(sequences.shape[-1])
        if initial_state is None:
            # The zero memory [B, H, W, F] from the dynamic input shape.
            shape = ops.shape(sequences)
            initial_state = ops.zeros(
                (shape[0], shape[2], shape[3], self.cell.filters),
                dtype=self.cell.compute_dtype,
            )
        elif isinstance(initial_state, (list, tuple)):
            if len(initial_state) != 1:
                raise ValueError(
                    f"{self.name} has one state; received {len(initial_state)} initial states."
                )
            initial_state = initial_state[0]
        if initial_state.shape[-1] is not None and (initial_state.shape[-1] != self.cell.filters):
            raise ValueError(
                f"{self.name}: initial_state must have {self.cell.filters} "
                f"channels, got shape {tuple(initial_state.shape)}."
            )
        return super().call(sequences, initial_state=[initial_state], mask=mask, training=training)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        shape = ops.shape(sequences)
        batch, steps, height, width = shape[0], shape[1], shape[2], shape[3]
        # Fold time into batch: one convolution over all frames.
        folded = ops.reshape(sequences, (-1, height, width, sequences.shape[-1]))
        projected = cell.input_projection(folded)
        projected = ops.reshape(projected, (batch, steps, height, width, 3 * cell.filters))

        if self.recompute:
            # lazily: TensorFlow only where this path needs it
            import tensorflow as tf

            # The kernel enters as a tensor read once outside the loop: a
            # variable captured inside a recomputed loop body has no gradient.
            kernel = ops.convert_to_tensor(cell.recurrent_kernel)
            checkpointed = tf.recompute_grad(cell.recurrent_step)

            def recurrent_step(x_proj, h_prev):
                return checkpointed(x_proj, h_prev, kernel)

        else:
            recurrent_step = cell.recurrent_step

        def step(x_proj, states):
            h = recurrent_step(x_proj, states[0])
            return h, [h]

        return _keras_rnn(
            step,
            projected,
            list(initial_state),
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=sequences.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences,
        )

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, steps = sequences_shape[0], sequences_shape[1]
        state_shape = (batch,) + tuple(sequences_shape[2:4]) + (self.cell.filters,)
        if self.return_sequences:
            output_shape = (batch, steps) + state_shape[1:]
        else:
            output_shape = state_shape
        if self.return_state:
            return output_shape, state_shape
        return output_shape

    def compute_mask(self, _, mask):
        mask = keras.tree.flatten(mask)[0] if mask is not None else None
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask, None]
        return output_mask

    @property
    def filters(self) -> int:
        return self.cell.filters

    @property
    def kernel_size(self) -> tuple[int, int]:
        return self.cell.kernel_size

    def get_config(self):
        base = super().get_config()
        cell_config = self.cell.get_config()
        del base["cell"]
        for key in ("stateful",):
            base.pop(key, None)
        return {
            **base,
            **{k: cell_config[k] for k in _CELL_ARGS},
            "recompute": self.recompute,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
