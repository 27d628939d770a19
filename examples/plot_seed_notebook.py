"""
The classic Keras MNIST notebook, with skmnist
=============================================

The notebook scales pixels by 1/255, trains Dense(512, relu) -> Dense(10, softmax)
with RMSprop for 5 epochs of batches of 128 and reaches about 98% test accuracy.
With skmnist that is one pipeline. Set ``SKMNIST_FAST=1`` to train on 5,000
images for one epoch.
"""

import os

from skmnist import make_mnist_pipeline
from skmnist.datasets import load_mnist

fast = os.environ.get("SKMNIST_FAST") == "1"

# %%
# Load MNIST as ``keras.datasets.mnist.load_data()`` does.
(x_train, y_train), (x_test, y_test) = load_mnist()
if fast:
    x_train, y_train = x_train[:5000], y_train[:5000]

# %%
# Fit the pipeline: PixelScaler (pixels / 255) then MNISTClassifier.
pipe = make_mnist_pipeline(epochs=1 if fast else 5, random_state=0)
pipe.fit(x_train, y_train)

# %%
# Per-epoch training curves are in ``history_``; the test accuracy matches the
# notebook's.
print(pipe.named_steps["clf"].history_)
test_acc = pipe.score(x_test, y_test)
print(f"test_acc: {test_acc:.4f}")
assert test_acc > (0.85 if fast else 0.975)
