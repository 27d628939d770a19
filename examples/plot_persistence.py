"""
Saving and loading a trained pipeline
=====================================

Training takes minutes; predicting takes milliseconds. Save the fitted
pipeline once and load it wherever digits need classifying. There are two ways:

* :func:`skmnist.save` and :func:`skmnist.load`, skmnist's own pickle-free
  format: JSON and Keras weights in a zip archive, safe to load from anyone;
* :func:`joblib.dump` and :func:`joblib.load`, as for any scikit-learn
  estimator: works for any hyper-parameters, but a joblib file is a pickle.

.. warning::

   Loading a pickle (joblib files are pickles) runs code stored in the file.
   Load only files you made yourself or got from someone you trust.

See :doc:`/persistence` for the format and what loading checks. With
``SKMNIST_FAST=1`` the network trains on 10,000 images for one epoch.
"""

import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import joblib
import numpy as np

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
# Saving without pickle
# ---------------------
# :func:`skmnist.save` writes the pipeline to one file: the fitted
# :class:`~skmnist.PixelScaler`, the classifier's hyper-parameters, classes and
# training history as JSON, and the Keras network's weights. ``.skmnist`` is
# the conventional extension. (``skmnist train --output model.skmnist`` saves
# its model the same way.)
folder = Path(tempfile.mkdtemp())
path = folder / "mnist_pipeline.skmnist"
skmnist.save(pipe, path)
print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB")

# %%
# The file is a zip archive of a manifest (format version, checksums, and the
# dtype and shape of every array), the estimator description as JSON, and the
# weights as flat ``.npy`` arrays: data only, no pickles, no HDF5.
with zipfile.ZipFile(path) as archive:
    members = archive.namelist()
    manifest = json.loads(archive.read("manifest.json"))
    description = json.loads(archive.read("estimator.json"))
print("members:", members)
print("format version:", manifest["format_version"])
print("steps:", [(name, step["class"]) for name, step in description["steps"]])
weights = sorted(name for name in members if name.startswith("weights/"))
assert weights and all(name.endswith(".npy") for name in weights)
assert set(members) == {"estimator.json", "manifest.json", *weights}
assert manifest["format"] == "skmnist" and set(manifest["arrays"]) == set(weights)

# %%
# Keras's own ``.keras`` file is an export, for Keras users: the classifier's
# network saves itself with ``model_.save``, and :func:`skmnist.load` does not
# read it.
pipe[-1].model_.save(folder / "network.keras")

# %%
# Loading it back, without unpickling
# -----------------------------------
# :func:`skmnist.load` checks the manifest and every checksum, creates the
# estimators from their class names and hyper-parameters, rebuilds the network
# in code and reads only its weight arrays. To see that nothing is unpickled,
# listen to Python's ``pickle.find_class`` audit event, which every unpickler
# raises for each class or function it looks up: the step through which a
# pickle runs code.
pickle_lookups = []
listening = False


def _record_pickle_lookups(event, args):
    if listening and event == "pickle.find_class":
        pickle_lookups.append(".".join(args))


sys.addaudithook(_record_pickle_lookups)  # for the rest of the process; cheap

listening = True
loaded = skmnist.load(path)
listening = False
print("classes looked up by unpickling:", len(pickle_lookups))
assert pickle_lookups == []

# %%
# The loaded pipeline predicts exactly what the original predicts, bit for
# bit, with no retraining, and keeps its fitted attributes, training history
# included.
original_proba = pipe.predict_proba(x_test)
assert np.array_equal(loaded.predict_proba(x_test), original_proba)
assert np.array_equal(loaded.predict(x_test), pipe.predict(x_test))
assert loaded.named_steps["clf"].history_ == pipe.named_steps["clf"].history_
print(f"test accuracy after loading: {loaded.score(x_test, y_test):.4f}")

# %%
# Saving with joblib
# ------------------
# ``joblib.dump`` pickles the whole pipeline, Keras model included. It also
# keeps hyper-parameters that :func:`skmnist.save` refuses, such as Keras
# callback or optimizer objects. (``skmnist train --format joblib`` saves one;
# its default is the pickle-free format.)
joblib_path = folder / "mnist_pipeline.joblib"
joblib.dump(pipe, joblib_path)
print(f"{joblib_path.name}: {joblib_path.stat().st_size / 1e6:.1f} MB")
assert joblib_path.is_file() and joblib_path.stat().st_size > 0

# %%
# Loading the joblib file unpickles it: the audit hook now records the classes
# and functions the file names, each of which unpickling imports and calls.
# Load it with the same versions of skmnist, scikit-learn, Keras and TensorFlow
# that saved it: pickles do not promise to work across versions, and
# scikit-learn warns when its version differs.
listening = True
from_joblib = joblib.load(joblib_path)
listening = False
print(f"classes and functions looked up by unpickling: {len(pickle_lookups)}")
print("\n".join(sorted({name for name in pickle_lookups if "numpy" not in name})))
assert any(name.startswith("skmnist.") for name in pickle_lookups)
assert np.array_equal(from_joblib.predict(x_test), pipe.predict(x_test))
np.testing.assert_allclose(from_joblib.predict_proba(x_test), original_proba, rtol=1e-6)

# %%
# :func:`skmnist.load` refuses a joblib file rather than unpickling it, so a
# pickle passed off as a model file cannot run its code that way.
try:
    skmnist.load(joblib_path)
except ValueError as error:
    print(error)
    assert "joblib" in str(error)
else:
    raise AssertionError("skmnist.load accepted a joblib file")
shutil.rmtree(folder)
