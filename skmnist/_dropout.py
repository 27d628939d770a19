"""Dropout whose masks on TensorFlow are the same under XLA as in a plain graph.

Keras's ``Dropout`` draws its mask on TensorFlow with
``tf.nn.experimental.stateless_dropout``, whose uniform floats XLA makes from
other bits of the same Philox stream than TensorFlow's own kernel does (the high
23 bits of each 32-bit word rather than the low 23): the same seed gives another
mask when the training step is compiled by XLA. A fit trained by XLA (the large
fits of :mod:`skmnist._training`, or ``Model.fit`` with ``jit_compile``) would
then not be the fit trained by a graph, whatever the seed.

:class:`Dropout` draws the 32-bit words themselves, which both compile to the
same Philox stream, and turns them into uniform floats as TensorFlow's kernel
does: in a graph its masks are exactly those of Keras's ``Dropout`` (a model
trained without XLA trains as before), and XLA now draws the same ones. On other
backends it is Keras's ``Dropout``: JAX draws the same bits whether jitted or not.
"""

import keras


@keras.saving.register_keras_serializable(package="skmnist")
class Dropout(keras.layers.Dropout):
    """``keras.layers.Dropout`` with the same masks under XLA as without it, on
    TensorFlow, for float32 inputs (see the module's docstring)."""

    def call(self, inputs, training=False):
        if (
            not training
            or not 0 < self.rate < 1
            or keras.backend.backend() != "tensorflow"
            or keras.backend.standardize_dtype(inputs.dtype) != "float32"
        ):
            return super().call(inputs, training=training)
        return _tensorflow_dropout(
            inputs, self.rate, self.noise_shape, self.seed_generator
        )


def _tensorflow_dropout(inputs, rate: float, noise_shape, seed_generator):
    """What ``tf.nn.experimental.stateless_dropout`` computes outside XLA, for
    Keras's seed ``seed_generator.next()``, with the same result under XLA."""
    import tensorflow as tf

    # As Keras's TensorFlow backend does: XLA's stateless ops take int32 seeds.
    seed = tf.cast(tf.math.floormod(seed_generator.next(), tf.int32.max - 1), tf.int32)
    shape = tf.shape(inputs)
    if noise_shape is not None:
        shape = [
            shape[axis] if size is None else size
            for axis, size in enumerate(noise_shape)
        ]
    # Philox by name: "auto_select" may pick another generator under XLA on
    # some devices; outside XLA it is Philox on CPU and GPU, as named here.
    bits = tf.random.stateless_uniform(
        shape, seed=seed, minval=None, maxval=None, dtype=tf.uint32, alg="philox"
    )
    # TensorFlow's kernel makes a float in [0, 1) of the low 23 bits: exact,
    # as is the scaling by a power of two.
    uniform = tf.cast(tf.bitwise.bitwise_and(bits, 0x7FFFFF), tf.float32) * 2.0**-23
    scaled = inputs * tf.constant(1 / (1 - rate), inputs.dtype)
    return tf.where(uniform >= rate, scaled, tf.zeros((), inputs.dtype))
