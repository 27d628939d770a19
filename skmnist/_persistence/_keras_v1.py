"""Reading the weights of format version 1 files, for callers who trust them.

Version 1 stored each fitted classifier's network as a Keras ``.keras`` member,
whose weights only h5py and the HDF5 library parse: large C parsers with a
history of memory-safety bugs on crafted files. :mod:`._archive` extracts such
members only when the caller passed ``trusted=True``; this module reads their
weight arrays (never their Keras configuration) into the network that the
classifier rebuilt from its hyper-parameters. Version 2 files never come here.
"""

from pathlib import Path

from skmnist._persistence._codec import array_from_json
from skmnist._persistence._errors import ModelFileError, expect


def load_weights(
    model, node: dict, where: str, *, keras_files: dict[str, Path]
) -> None:
    """Read the weights of the ``.keras`` member that ``node`` names, and the
    non-trainable variables (dropout's random state) stored beside them in
    JSON, into ``model``."""
    description = expect(node.get("model"), dict, where)
    member = description.get("member")
    if member not in keras_files:
        raise ModelFileError(f"{where}: missing Keras model {member!r}.")
    try:
        # Reads the weight arrays (and optimizer state) only.
        model.load_weights(keras_files[member])
    except Exception as error:
        raise ModelFileError(
            f"{where}: the Keras weights do not fit the network the "
            f"hyper-parameters describe: {error}"
        ) from None
    states = expect(description.get("non_trainable_variables"), list, where)
    variables = model.non_trainable_variables
    if len(states) != len(variables):
        raise ModelFileError(f"{where}: wrong number of non-trainable variables.")
    for variable, state in zip(variables, states, strict=True):
        value = array_from_json(expect(state, dict, where), where)
        if value.shape != tuple(variable.shape):
            raise ModelFileError(f"{where}: wrong shape of {variable.path}.")
        variable.assign(value.astype(variable.dtype))
