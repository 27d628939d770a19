"""When training stops improving: ``MLPClassifier``'s rule, as a Keras callback.

scikit-learn's ``MLPClassifier`` counts the epochs that bring no improvement of
more than ``tol`` (of the validation accuracy with ``early_stopping``, of the
training loss without) and, past ``n_iter_no_change`` of them, divides the
learning rate by 5 (``learning_rate="adaptive"``) or stops, restoring the best
epoch's weights with ``early_stopping``. :class:`ConvergenceMonitor` applies
that rule to a Keras model at the end of each epoch, for any optimizer, and
records what ``MLPClassifier`` reports (``loss_curve_``, ``validation_scores_``,
``best_loss_``, ...), with the validation loss beside them.

Unlike ``MLPClassifier``, training without ``early_stopping`` never stops early:
``epochs`` epochs are ``epochs`` epochs, as in Keras.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

from skmnist._compat import quiet_array_deprecation

# MLPClassifier's: below it, "adaptive" stops dividing the learning rate.
_MIN_ADAPTIVE_LEARNING_RATE = 1e-6


@dataclass
class ConvergenceRecord:
    """What a fit reports, as ``MLPClassifier`` defines it; continued training
    (``warm_start``, ``partial_fit``) carries it on, a new fit starts a new one."""

    early_stopping: bool
    loss_curve: list[float] = field(default_factory=list)
    validation_loss_curve: list[float] | None = None
    validation_scores: list[float] | None = None
    best_validation_score: float | None = None
    best_loss: float | None = None
    no_improvement_count: int = 0
    # None where unknown: a model saved by skmnist 0.1, and training it on.
    samples_seen: int | None = 0
    # The weights of the best epoch so far (early stopping only); not saved.
    best_weights: list | None = None
    # The learning rate "adaptive" brought the optimizer's starting rate
    # (``started_from``) down to, which partial_fit goes on from.
    adapted_learning_rate: tuple[float, float] | None = None

    def __post_init__(self):
        if self.early_stopping:
            if self.validation_scores is None:
                self.validation_scores = []
            if self.best_validation_score is None:
                self.best_validation_score = -math.inf
        elif self.best_loss is None:
            self.best_loss = math.inf

    def monitoring(self, early_stopping: bool) -> "ConvergenceRecord":
        """This record carried on by a call with or without early stopping.

        What ``MLPClassifier`` reports depends on it (``validation_scores_`` or
        ``best_loss_``, the other None): a call that switches starts that part
        anew, counting from zero, and keeps the curves.
        """
        if early_stopping == self.early_stopping:
            return self
        return ConvergenceRecord(
            early_stopping=early_stopping,
            loss_curve=self.loss_curve,
            validation_loss_curve=self.validation_loss_curve,
            samples_seen=self.samples_seen,
            adapted_learning_rate=self.adapted_learning_rate,
        )


class ConvergenceMonitor(keras.callbacks.Callback):
    """Apply ``MLPClassifier``'s no-improvement rule at each epoch's end.

    Parameters
    ----------
    record : ConvergenceRecord
        Updated in place.
    validation_score : callable or None
        ``validation_score(model) -> float``, the accuracy on the validation
        rows, for early stopping (``record.early_stopping``); None monitors the
        training loss, or nothing where the record is of early stopping
        (``partial_fit``, which does not stop early).
    n_iter_no_change, tol : int, float
        As in ``MLPClassifier``.
    adaptive : bool
        Divide the learning rate by 5 rather than stop (or, without early
        stopping, rather than go on counting).
    samples_per_epoch : int
        Training rows, counted into ``record.samples_seen`` (``t_``).
    """

    def __init__(
        self,
        record: ConvergenceRecord,
        validation_score: Callable[[keras.Model], float] | None,
        *,
        n_iter_no_change: int,
        tol: float,
        adaptive: bool,
        samples_per_epoch: int,
        verbose: int = 0,
    ):
        super().__init__()
        self.record = record
        self.validation_score = validation_score
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.adaptive = adaptive
        self.samples_per_epoch = samples_per_epoch
        self.verbose = verbose
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        record = self.record
        self.epochs += 1
        if record.samples_seen is not None:
            record.samples_seen += self.samples_per_epoch
        record.loss_curve.append(float(logs["loss"]))
        if "val_loss" in logs:
            if record.validation_loss_curve is None:
                record.validation_loss_curve = []
            record.validation_loss_curve.append(float(logs["val_loss"]))
        if self.validation_score is not None:
            score = float(self.validation_score(self.model))
            record.validation_scores.append(score)
            improved = score >= record.best_validation_score + self.tol
            if score > record.best_validation_score:  # earliest best on ties
                record.best_validation_score = score
                record.best_weights = _weights(self.model)
        elif record.best_loss is not None:
            loss = record.loss_curve[-1]
            improved = loss <= record.best_loss - self.tol
            record.best_loss = min(record.best_loss, loss)
        else:  # partial_fit after early stopping: nothing is monitored
            return
        record.no_improvement_count = 0 if improved else record.no_improvement_count + 1
        if record.no_improvement_count > self.n_iter_no_change:
            watched = (
                "Validation score"
                if self.validation_score is not None
                else "Training loss"
            )
            what = (
                f"{watched} did not improve more than tol={self.tol} for "
                f"{self.n_iter_no_change} consecutive epochs."
            )
            if self.adaptive and self._divide_learning_rate():
                record.no_improvement_count = 0
                self._say(f"{what} Learning rate set to {self._rate():g}.")
            elif self.validation_score is not None:
                self.model.stop_training = True
                self._say(f"{what} Stopping.")

    def on_train_end(self, logs=None):
        if self.validation_score is not None and self.record.best_weights is not None:
            self.model.set_weights(self.record.best_weights)

    def _say(self, message: str) -> None:
        # As MLPClassifier prints it with verbose.
        if self.verbose:
            # After Keras's progress bar, which verbose=1 leaves mid-line.
            print(("\n" if self.verbose == 1 else "") + message)

    def _rate(self) -> float:
        with quiet_array_deprecation():
            return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _divide_learning_rate(self) -> bool:
        """Divide the learning rate by 5, unless it is down to 1e-6 already."""
        rate = self._rate()
        if rate <= _MIN_ADAPTIVE_LEARNING_RATE:
            return False
        # A schedule is refused with "adaptive" before training.
        self.model.optimizer.learning_rate = np.float32(rate / 5)
        started_from = self.record.adapted_learning_rate
        started_from = rate if started_from is None else started_from[0]
        self.record.adapted_learning_rate = (started_from, self._rate())
        return True


def _weights(model) -> list:
    with quiet_array_deprecation():
        return model.get_weights()
