"""
Classifying your own digit images
=================================

A digit you write and photograph looks nothing like an MNIST image: dark ink
on light paper, in colour, large, anywhere in the frame. MNIST digits are light
on black, 28x28, scaled to fit a 20x20 box and centred by their centre of mass
(at pixel (14, 14)).
:func:`~skmnist.load_digit_image` reads an image file and makes it look like
that; :func:`~skmnist.preprocess_digit_image` does the same for an image already
in memory, and :class:`~skmnist.DigitImagePreprocessor` is that function as a
transformer for pipelines.

No handwriting ships with this example, so it makes "photos" out of MNIST test
digits with Pillow: blue ink on cream paper, enlarged, slightly rotated and off
centre, with a little noise. With ``SKMNIST_FAST=1`` the network trains on
10,000 images for one epoch.
"""

import os
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from sklearn.pipeline import make_pipeline

from skmnist import DigitImagePreprocessor, load_digit_image, make_mnist_pipeline
from skmnist.datasets import load_mnist

fast = os.environ.get("SKMNIST_FAST") == "1"

(x_train, y_train), (x_test, y_test) = load_mnist()
if fast:
    x_train, y_train = x_train[:10_000], y_train[:10_000]
pipe = make_mnist_pipeline(epochs=1 if fast else 5, random_state=0)
pipe.fit(x_train, y_train)

# %%
# Making a photo of a digit
# -------------------------
# The ink is the MNIST image itself (light = ink); the paper is a larger
# cream-coloured page.
rng = np.random.RandomState(0)


def as_photo(digit: np.ndarray) -> Image.Image:
    """An MNIST digit as blue ink on cream paper, enlarged and off centre."""
    scale = rng.randint(5, 9)
    ink = Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.BICUBIC)
    ink = ink.rotate(rng.uniform(-8, 8), resample=Image.BICUBIC)
    page = Image.new("L", (28 * scale + 120, 28 * scale + 90))
    page.paste(ink, (rng.randint(0, 120), rng.randint(0, 90)))
    amount = np.asarray(page, dtype=float)[..., np.newaxis] / 255
    paper, blue = np.array([245, 238, 220]), np.array([20, 40, 150])
    pixels = paper * (1 - amount) + blue * amount + rng.normal(0, 4, amount.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


folder = Path(tempfile.mkdtemp())
chosen = rng.choice(len(x_test), 10, replace=False)
files = []
for i in chosen:
    path = folder / f"digit_{i}.png"
    as_photo(x_test[i]).save(path)
    files.append(path)
assert all(path.is_file() for path in files)

# %%
# From file to prediction
# -----------------------
# :func:`~skmnist.load_digit_image` turns each file into a 28x28 MNIST-style
# digit. Stacked, they go straight into the pipeline.
digits = np.stack([load_digit_image(path) for path in files])
proba = pipe.predict_proba(digits)
predicted = pipe.classes_[proba.argmax(axis=1)]
for path, digit, p in zip(files, predicted, proba.max(axis=1), strict=True):
    print(f"{path.name}: {digit} ({p:.3f})")

# %%
# Top row: the photos; middle row: what preprocessing made of them; bottom row:
# the MNIST originals they were made from. The preprocessing recovers the
# originals closely, so the photos are classified about as well as the
# originals are.
fig, axes = plt.subplots(3, len(files), figsize=(13, 4.6), layout="constrained")
for column, (path, digit, i) in enumerate(zip(files, digits, chosen, strict=True)):
    with Image.open(path) as photo:
        axes[0, column].imshow(photo)
    axes[1, column].imshow(digit, cmap="gray_r")
    axes[1, column].set_title(f"predicted {predicted[column]}", fontsize=9)
    axes[2, column].imshow(x_test[i], cmap="gray_r")
    axes[2, column].set_title(f"true {y_test[i]}", fontsize=9)
for ax in axes.ravel():
    ax.set_axis_off()

correlations = [
    np.corrcoef(digit.ravel(), x_test[i].ravel())[0, 1]
    for digit, i in zip(digits, chosen, strict=True)
]
print("correlation with the originals:", np.round(correlations, 2))
assert min(correlations) > 0.5
agreement = np.mean(predicted == pipe.predict(x_test[chosen]))
print(f"same prediction as for the original: {agreement:.0%}")
assert agreement >= (0.6 if fast else 0.8)

# %%
# The same, as a pipeline
# -----------------------
# :class:`~skmnist.DigitImagePreprocessor` accepts images of any size (Pillow
# images or arrays), so a pipeline with it in front of the fitted MNIST
# pipeline classifies photos directly. It learns nothing, and the MNIST
# pipeline is already fitted, so this pipeline needs no ``fit``.
photos = []
for path in files:
    with Image.open(path) as photo:
        photo.load()
        photos.append(photo)
photo_pipe = make_pipeline(DigitImagePreprocessor(), pipe)
assert np.array_equal(photo_pipe.predict(photos), predicted)

# %%
# Drawings and phone photos
# -------------------------
# A drawing app exports a light digit on a transparent canvas: there the
# picture is in the alpha channel, which then serves as the ink (a dark digit
# on a transparent canvas is read as on white paper). A phone stores a photo
# as the sensor saw it, with an EXIF orientation tag saying how to turn it
# upright; the digit is turned upright first. MNIST's own digits are what the
# preprocessing aims for, so they come back almost unchanged.
original = x_test[chosen[0]]
stroke = Image.fromarray(original).resize((140, 140), Image.BICUBIC)
drawing = Image.new("RGBA", stroke.size, (0, 0, 0, 0))  # transparent canvas
drawing.paste(Image.new("RGBA", stroke.size, (255, 255, 255, 255)), mask=stroke)
drawing.save(folder / "drawing.png")
sideways = as_photo(original).transpose(Image.Transpose.ROTATE_90)
exif = Image.Exif()
exif[0x0112] = 6  # EXIF orientation 6: turn 90 degrees clockwise to view
sideways.save(folder / "sideways.jpg", exif=exif)
others = {
    "drawing.png": load_digit_image(folder / "drawing.png"),
    "sideways.jpg": load_digit_image(folder / "sideways.jpg"),
    "MNIST digit": DigitImagePreprocessor().transform(original[np.newaxis])[0],
}
fig, axes = plt.subplots(1, 3, figsize=(6, 2.4), layout="constrained")
for ax, (name, digit) in zip(axes, others.items(), strict=True):
    label = pipe.predict(digit[np.newaxis])[0]
    print(f"{name}: {label}")
    ax.imshow(digit, cmap="gray_r")
    ax.set_title(f"{name}: {label}", fontsize=9)
    ax.set_axis_off()
    assert np.corrcoef(digit.ravel(), original.ravel())[0, 1] > 0.5
# Preprocessing an MNIST digit changes it by less than one grey level a pixel.
assert np.abs(others["MNIST digit"].astype(int) - original).mean() < 1
shutil.rmtree(folder)

# %%
# From the command line, ``skmnist predict MODEL digit.png ...`` does the same
# with a model saved by ``skmnist train``.
