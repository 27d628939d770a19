import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score, validation_curve
from sklearn.pipeline import Pipeline

from skmnist import MNISTClassifier, PixelScaler, make_mnist_pipeline


def test_pipeline_steps_and_parameter_names():
    pipe = make_mnist_pipeline(hidden_units=64, optimizer__learning_rate=0.01)
    assert isinstance(pipe, Pipeline)
    assert isinstance(pipe.named_steps["scale"], PixelScaler)
    assert isinstance(pipe.named_steps["clf"], MNISTClassifier)
    params = pipe.get_params()
    assert params["clf__hidden_units"] == 64
    assert params["clf__optimizer__learning_rate"] == 0.01


@pytest.mark.slow
def test_pipeline_on_raw_images(digits):
    images, labels = digits
    pipe = make_mnist_pipeline(
        hidden_units=64, epochs=10, batch_size=32, random_state=0
    ).set_params(scale__max_value=16)
    pipe.fit(images, labels)
    assert pipe.score(images, labels) > 0.9
    assert pipe.predict_proba(images[:3]).shape == (3, 10)


@pytest.mark.slow
def test_grid_search_over_pipeline_parameters(digits):
    images, labels = digits
    pipe = make_mnist_pipeline(epochs=3, batch_size=32, random_state=0)
    pipe.set_params(scale__max_value=16)
    search = GridSearchCV(
        pipe,
        {"clf__hidden_units": [16, 64], "clf__optimizer__learning_rate": [1e-3, 1e-2]},
        cv=2,
    ).fit(images, labels)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["clf__optimizer__learning_rate"] == 1e-2
    assert search.best_estimator_.named_steps["clf"].hidden_units in (16, 64)
    assert search.score(images, labels) > 0.8


@pytest.mark.slow
def test_cross_val_score_and_clone(digits):
    images, labels = digits
    pipe = make_mnist_pipeline(hidden_units=32, epochs=8, batch_size=32)
    pipe.set_params(scale__max_value=16, clf__random_state=0)
    scores = cross_val_score(clone(pipe), images, labels, cv=3)
    assert np.all(scores > 0.7)


@pytest.mark.slow
def test_numpy_grids_in_searches(digits):
    """Grids built with np.array, np.arange or np.logspace hold NumPy scalars."""
    images, labels = digits
    pipe = make_mnist_pipeline(epochs=2, batch_size=64, random_state=0)
    pipe.set_params(scale__max_value=16)
    search = GridSearchCV(
        pipe,
        {
            "clf__hidden_units": np.array([8, 16]),
            "clf__optimizer__learning_rate": np.logspace(-3, -2, 2, dtype=np.float32),
            "clf__dropout": np.array([0.0], dtype=np.float32),
        },
        cv=2,
    ).fit(images, labels)
    assert len(search.cv_results_["params"]) == 4
    train_scores, _ = validation_curve(
        pipe, images, labels, param_name="clf__epochs",
        param_range=np.arange(1, 3), cv=2,
    )  # fmt: skip
    assert train_scores.shape == (2, 2)


def test_repr_inside_a_pipeline_shows_what_the_user_set():
    text = repr(make_mnist_pipeline(hidden_units=64))
    assert "MNISTClassifier(hidden_units=64)" in text
    for unused in ("build_fn", "model=", "run_eagerly", "validation_batch_size"):
        assert unused not in text


def test_robust_recipe_sizes_its_cosine_and_names_what_it_cannot_size():
    import fractions

    from skmnist._pipeline import robust_recipe

    recipe = robust_recipe(np.int64(1000), epochs=np.int32(3), batch_size=128)
    schedule = recipe["learning_rate_schedule"].get_config()
    assert schedule["decay_steps"] == 3 * 8  # ceil(1000 / 128) batches an epoch
    assert schedule["initial_learning_rate"] == 1e-3
    rate = robust_recipe(100, learning_rate=fractions.Fraction(1, 1000))
    assert rate["learning_rate_schedule"].get_config()["initial_learning_rate"] == 1e-3
    for arguments, message in [
        ({"n_samples": 0}, "n_samples must be at least 1, got 0"),
        ({"n_samples": -5}, "n_samples must be at least 1"),
        ({"n_samples": 10.5}, "n_samples must be a whole number, got 10.5"),
        ({"n_samples": 100, "epochs": 0}, "epochs must be at least 1"),
        ({"n_samples": 100, "batch_size": 0}, "batch_size must be at least 1"),
        ({"n_samples": 100, "batch_size": True}, "batch_size must be a whole"),
        ({"n_samples": 100, "learning_rate": 0}, "learning_rate must be above 0"),
        ({"n_samples": 100, "learning_rate": float("nan")}, "above 0 .*got nan"),
        ({"n_samples": 100, "learning_rate": 1e300}, r"float32\), got 1e\+300"),
        ({"n_samples": 10**30}, "more than a schedule counts"),
    ]:
        with pytest.raises(ValueError, match=message):
            robust_recipe(**arguments)
