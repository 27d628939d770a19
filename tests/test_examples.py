"""Every gallery example runs, in fast mode, and checks its own results."""

import runpy
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("plot_*.py"))


def test_examples_are_found():
    assert len(EXAMPLES) >= 6


@pytest.mark.mnist
@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs_in_fast_mode(example, mnist_path, monkeypatch, tmp_path):
    if example.stem == "plot_dask_search":
        pytest.importorskip("distributed")  # the dask extra
    if example.stem == "plot_onnx_export":
        pytest.importorskip("onnxruntime")  # the onnx extra
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("SKMNIST_FAST", "1")
    monkeypatch.setenv("SKMNIST_DATA", str(mnist_path))
    monkeypatch.chdir(tmp_path)  # anything an example writes lands here
    try:
        # The examples assert what they claim (figures drawn, files written,
        # accuracy above the fast mode's floor): an AssertionError fails the test.
        runpy.run_path(str(example), run_name="__main__")
    finally:
        plt.close("all")
