"""The notebook runs end to end on the shipped synthetic sweep (executed with nbclient, with the
kernel of the interpreter running the tests, so it never rots)."""

from pathlib import Path

import pytest

NOTEBOOK = (
    Path(__file__).resolve().parents[2] / "scaling_analysis" / "notebooks" / "scaling_laws.ipynb"
)


def test_notebook_executes_and_recovers_the_truth():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # "python3" is launched with sys.executable by jupyter_client: the venv running the tests
    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    text = "".join(out.get("text", "") for out in outputs)
    assert "12 runs" in text
    assert "ternary  alpha" in text and "float    beta" in text
    # every coefficient of both laws is compared with the truth; (nearly) all intervals hold it
    assert text.count(" in\n") + text.count(" OUT\n") == 10
    assert text.count(" OUT\n") <= 2
    assert "leave-one-N-out" in text and "tokens/param" in text and "isoFLOP a=" in text
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) == 8
