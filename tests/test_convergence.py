"""MLPClassifier's no-improvement rule, applied by ConvergenceMonitor."""

import math

import keras
import numpy as np
import pytest

from skmnist._convergence import ConvergenceMonitor, ConvergenceRecord

# Run again under Keras's JAX backend by .ci/run (see CONTRIBUTING.md).
pytestmark = pytest.mark.each_backend


def _model(learning_rate=0.1):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _run(monitor, model, losses, scores=None):
    """Epochs whose training losses (and validation scores) are given; the
    weights are set to the epoch's number so that restores can be told."""
    monitor.set_model(model)
    model.stop_training = False
    monitor.on_train_begin()
    epochs = 0
    for epoch, loss in enumerate(losses):
        model.set_weights(
            [np.full(w.shape, epoch, w.dtype) for w in model.get_weights()]
        )
        if scores is not None:
            monitor.validation_score = lambda _model, s=scores[epoch]: s
        monitor.on_epoch_end(epoch, {"loss": loss, "val_loss": loss + 1})
        epochs += 1
        if model.stop_training:
            break
    monitor.on_train_end()
    return epochs


def _monitor(record, score=None, **options):
    options = {"n_iter_no_change": 2, "tol": 0.0, "adaptive": False, **options}
    return ConvergenceMonitor(record, score, samples_per_epoch=10, **options)


def test_early_stopping_stops_after_n_iter_no_change_and_restores_the_first_best():
    record = ConvergenceRecord(early_stopping=True)
    model = _model()
    scores = [0.5, 0.7, 0.7, 0.6, 0.65, 0.6, 0.9]
    epochs = _run(_monitor(record, lambda m: 0.0), model, [1.0] * 7, scores)
    # As MLPClassifier counts (score < best + tol): the second 0.7 is no worse,
    # then 0.6, 0.65 and 0.6 are three epochs without improvement, one more
    # than n_iter_no_change=2: it stops before 0.9.
    assert epochs == 6
    assert record.validation_scores == scores[:6]
    assert record.best_validation_score == 0.7
    assert record.best_loss is None
    # Restored: the weights of epoch 1, the earliest of the two 0.7 epochs.
    assert all(np.all(w == 1) for w in model.get_weights())


def test_stopping_counts_epochs_not_better_by_tol():
    record = ConvergenceRecord(early_stopping=True)
    model = _model()
    # Improvements of 0.001 < tol=0.01 count as none: stops after 1 + 3 epochs.
    scores = [0.5, 0.501, 0.502, 0.503, 0.504, 0.505]
    epochs = _run(_monitor(record, lambda m: 0.0, tol=0.01), model, [1.0] * 6, scores)
    assert epochs == 4
    assert record.no_improvement_count == 3
    # The best is still the highest score seen, 0.503 at epoch 3.
    assert record.best_validation_score == 0.503
    assert all(np.all(w == 3) for w in model.get_weights())


def test_without_early_stopping_nothing_stops_and_best_loss_is_tracked():
    record = ConvergenceRecord(early_stopping=False)
    model = _model()
    losses = [1.0, 1.0, 1.0, 1.0, 1.0, 2.0]
    assert _run(_monitor(record), model, losses) == 6
    assert record.best_loss == 1.0
    assert record.validation_scores is None
    assert record.best_validation_score is None
    assert record.loss_curve == losses
    assert record.validation_loss_curve == [loss + 1 for loss in losses]
    assert record.samples_seen == 60
    # No restore without early stopping: the last epoch's weights stay.
    assert all(np.all(w == 5) for w in model.get_weights())


def test_adaptive_divides_the_learning_rate_by_five_and_goes_on():
    record = ConvergenceRecord(early_stopping=True)
    model = _model(learning_rate=0.1)
    scores = [0.5] * 7
    monitor = _monitor(record, lambda m: 0.0, adaptive=True, tol=0.01)
    # Epoch 0 improves on -inf; epochs 1-3 do not: the count passes 2 at
    # epoch 3, and again at epoch 6.
    assert _run(monitor, model, [1.0] * 7, scores) == 7
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1 / 25)


def test_adaptive_stops_dividing_at_one_millionth():
    record = ConvergenceRecord(early_stopping=True)
    model = _model(learning_rate=2e-6)
    monitor = _monitor(
        record, lambda m: 0.0, adaptive=True, n_iter_no_change=1, tol=0.01
    )
    epochs = _run(monitor, model, [1.0] * 10, [0.5] * 10)
    # 2e-6 -> 4e-7 after epoch 2, then at 4e-7 <= 1e-6 early stopping stops.
    assert float(model.optimizer.learning_rate) == pytest.approx(4e-7)
    assert epochs == 5


def test_adaptive_on_the_training_loss_without_early_stopping():
    record = ConvergenceRecord(early_stopping=False)
    model = _model(learning_rate=0.1)
    monitor = _monitor(record, adaptive=True, n_iter_no_change=1, tol=0.01)
    assert _run(monitor, model, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5], None) == 6
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1 / 25)


def test_a_new_record_starts_as_mlpclassifier_initialises():
    assert ConvergenceRecord(early_stopping=True).best_validation_score == -math.inf
    assert ConvergenceRecord(early_stopping=False).best_loss == math.inf
