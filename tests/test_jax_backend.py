"""The estimator's backend-specific tests, run again under Keras's JAX backend.

Keras picks its backend once per process, so they run in one subprocess. What
runs there is what has code or behaviour of its own per backend: the compiled
epoch loop (test_training.py), the compiled prediction programs
(test_inference.py) and the classifier's fitting, seeding, warm starts,
weights, losses and pickling (test_classifier.py). The classifier tests of the
scikit-learn layer above Keras (parameters, tags, label encoding, refusals,
meta-estimators and cross-validation) do the same under either backend and run
under TensorFlow only; they are listed below by name, so that any other test,
including a new one, runs under both. tox's ``tests-jax`` environment runs the
whole suite under JAX.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
MODULES_TO_RERUN = [
    "test_training.py",
    "test_inference.py",
    "test_classifier.py",
    "test_network.py",
    "test_convergence.py",
    "test_packing.py",
    "test_model_selection.py",
    "test_augmentation.py",
]
# test_classifier.py's tests of scikit-learn's side only.
SCIKIT_LEARN_LAYER = [
    "test_defaults_are_the_seed_notebook",
    "test_is_a_classifier_to_scikit_learn",
    "test_integer_cv_stratifies",
    "test_works_inside_meta_estimators",
    "test_roc_auc_ovr_scoring",
    "test_string_labels",
    "test_twenty_six_classes",
    "test_clone_is_unfitted_with_same_params",
    "test_invalid_hyper_parameters_are_named",
    "test_one_class_is_refused",
    "test_numpy_scalars_are_accepted_as_hyper_parameters",
    "test_validation_data_labels_are_encoded_as_y",
    "test_partial_fit_refuses_balanced_class_weight",
    "test_binary_crossentropy_on_more_classes_says_what_to_use",
    "test_repr_shows_what_the_user_set",
    "test_hidden_layer_sizes_names_hidden_units",
    "test_misspelled_parameters_are_refused",
    "test_partial_fit_needs_classes_on_the_first_call",
    "test_early_stopping_needs_validation_rows",
    "test_adaptive_needs_a_rate_it_can_divide",
    "test_validation_weights_that_weigh_nothing_are_refused",
]


@pytest.mark.slow
def test_backend_specific_tests_pass_under_the_jax_backend():
    pytest.importorskip("jax", reason="the JAX backend needs skmnist[jax]")
    if os.environ.get("KERAS_BACKEND") == "jax":
        pytest.skip("this whole run already uses the JAX backend")
    # Node ids are relative to the root folder, which holds tests/.
    deselected = [
        f"--deselect=tests/test_classifier.py::{name}" for name in SCIKIT_LEARN_LAYER
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *deselected,
            *(str(TESTS / module) for module in MODULES_TO_RERUN),
        ],
        env={**os.environ, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        cwd=TESTS.parent,
        # A bound for a hang, not a speed goal: on a machine shared with
        # several other test runs, 900 s was not enough for these tests.
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    # Every name listed is a test there and was left out (a parametrized one
    # once per case), so the list cannot silently go stale.
    source = (TESTS / "test_classifier.py").read_text()
    assert [name for name in SCIKIT_LEARN_LAYER if f"def {name}(" not in source] == []
    summary = re.search(r"(\d+) passed.*?(\d+) deselected", result.stdout)
    assert summary and int(summary[2]) >= len(SCIKIT_LEARN_LAYER), result.stdout[-500:]
