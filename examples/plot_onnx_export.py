"""
Serving without TensorFlow: export to ONNX
==========================================

A fitted pipeline can serve predictions where neither TensorFlow nor
scikit-learn is installed: :func:`skmnist.to_onnx` converts it to an ONNX model,
through the converters skmnist registers with skl2onnx, and onnxruntime runs
it. This example trains the MNIST pipeline, exports it, runs the ONNX model in
onnxruntime and checks that it predicts what the pipeline predicts. It needs
``pip install "skmnist[onnx]"``; see :doc:`/deploying`. With
``SKMNIST_FAST=1`` the network trains on 10,000 images for one epoch.
"""

import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import onnx
import onnxruntime

import skmnist
from skmnist import make_mnist_pipeline
from skmnist.datasets import load_mnist

fast = os.environ.get("SKMNIST_FAST") == "1"

(x_train, y_train), (x_test, y_test) = load_mnist()
if fast:
    x_train, y_train = x_train[:10_000], y_train[:10_000]
pipe = make_mnist_pipeline(epochs=1 if fast else 5, random_state=0)
pipe.fit(x_train, y_train)

# %%
# Exporting
# ---------
# ``dtype="uint8"`` makes the ONNX model take MNIST's images as they are
# stored; the default, float32, takes any pixel values. The file is written
# atomically, like :func:`skmnist.save`'s. (``skmnist export model.skmnist
# model.onnx`` does the same from the command line.)
path = Path(tempfile.mkdtemp()) / "mnist_pipeline.onnx"
skmnist.to_onnx(pipe, path, dtype="uint8")
model = onnx.load(path)
print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB")
print("input:", [(i.name, i.type.tensor_type.shape) for i in model.graph.input])
print("outputs:", [o.name for o in model.graph.output])
print("operators:", sorted({node.op_type for node in model.graph.node}))

# %%
# The graph holds the whole pipeline: the :class:`~skmnist.PixelScaler`'s
# flattening and scaling, the network's two Dense layers as MatMul and Add
# with their activations, and the mapping from the winning column to the
# class label.
#
# Predicting in onnxruntime
# -------------------------
# The outputs are the ones skl2onnx gives every classifier: ``output_label``
# and ``output_probability``, a list of ``{class: probability}`` dicts.
session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
labels, probability_maps = session.run(None, {"input": x_test})
proba = np.array([[row[c] for c in pipe.classes_] for row in probability_maps])

np.testing.assert_array_equal(labels, pipe.predict(x_test))
difference = np.abs(proba - pipe.predict_proba(x_test)).max()
assert difference <= 1e-5, difference
print(f"labels equal predict's; probabilities within {difference:.1e}")
print(f"test accuracy in onnxruntime: {(labels == y_test).mean():.4f}")

# %%
# One image at a time
# -------------------
# A service often classifies one image per request, where onnxruntime's small
# overhead shows.
one = x_test[:1]
timings = {}
for name, predict in [
    ("pipeline.predict_proba", lambda: pipe.predict_proba(one)),
    ("onnxruntime", lambda: session.run(None, {"input": one})),
]:
    predict()  # warm up
    start = time.perf_counter()
    for _ in range(100):
        predict()
    timings[name] = (time.perf_counter() - start) / 100 * 1e3

fig, ax = plt.subplots(figsize=(5, 2))
ax.barh(list(timings), list(timings.values()))
ax.set_xlabel("milliseconds per one-image prediction")
fig.tight_layout()
plt.show()
