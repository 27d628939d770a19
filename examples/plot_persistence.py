"""
Saving and loading a trained pipeline
=====================================

Training takes minutes; predicting takes milliseconds. Save the fitted
pipeline once and load it wherever digits need classifying. The pipeline
pickles like any scikit-learn estimator, Keras model included, so
:func:`joblib.dump` and :func:`joblib.load` save and load it, scaling step and
all.

.. warning::

   Loading a pickle (joblib files are pickles) runs code stored in the file.
   Load only files you made yourself or got from someone you trust.

With ``SKMNIST_FAST=1`` the network trains on 10,000 images for one epoch.
"""

import os
import shutil
import tempfile
from pathlib import Path

import joblib
import numpy as np

from skmnist import make_mnist_pipeline
from skmnist.datasets import load_mnist

fast = os.environ.get("SKMNIST_FAST") == "1"

(x_train, y_train), (x_test, y_test) = load_mnist()
if fast:
    x_train, y_train = x_train[:10_000], y_train[:10_000]
pipe = make_mnist_pipeline(epochs=1 if fast else 5, random_state=0)
pipe.fit(x_train, y_train)

# %%
# Saving with joblib
# ------------------
# ``joblib.dump`` writes the whole pipeline: the fitted
# :class:`~skmnist.PixelScaler`, the classifier's parameters and classes, and
# the Keras network's weights. (``skmnist train`` saves its model the same way.)
folder = Path(tempfile.mkdtemp())
path = folder / "mnist_pipeline.joblib"
joblib.dump(pipe, path)
print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB")
assert path.is_file() and path.stat().st_size > 0

# %%
# Loading it back
# ---------------
# The loaded pipeline predicts exactly what the original predicts, with no
# retraining. Load it with the same versions of skmnist, scikit-learn, Keras
# and TensorFlow that saved it: pickles do not promise to work across
# versions, and scikit-learn warns when its version differs.
loaded = joblib.load(path)
original_proba = pipe.predict_proba(x_test)
loaded_proba = loaded.predict_proba(x_test)
assert np.array_equal(loaded.predict(x_test), pipe.predict(x_test))
np.testing.assert_allclose(loaded_proba, original_proba, rtol=1e-6)
print(f"test accuracy after loading: {loaded.score(x_test, y_test):.4f}")

# %%
# The loaded pipeline is a fitted scikit-learn estimator like the original,
# training history included.
print(loaded.named_steps["clf"].history_)
assert loaded.named_steps["clf"].history_ == pipe.named_steps["clf"].history_
shutil.rmtree(folder)

# TODO(persistence): the pickle-free skmnist.save / skmnist.load section goes
# here once the persistence branch is merged.
