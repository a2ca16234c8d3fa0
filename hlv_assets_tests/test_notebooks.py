"""The notebooks run top to bottom (nbclient, the project's kernel) against the tiny main job's store.

Each kernel inherits HLV_HOME / HLV_PROFILE from the session. `02_add_a_new_llm` registers a judge and
materializes partitions, so it runs on a copy of the session's store (the other tests keep theirs as the main
job left it); it uses its own Dagster instance under that copy, as `hlv run` would.
"""

from __future__ import annotations

import os
import shutil
import sqlite3

from hlv_assets.lib.paths import REPO_ROOT, output_dir

NOTEBOOKS = REPO_ROOT / "notebooks"


def _execute(name: str) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()  # a cell error raises
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


def _copy_store(target) -> None:
    """The session's results store (an online SQLite backup) and stored asset values, into `target`."""
    source = output_dir()
    target.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(source / "hlv.db"), sqlite3.connect(target / "hlv.db")
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    shutil.copytree(source / "assets", target / "assets")


def test_results_walkthrough(tiny_graph):
    _execute("01_results_walkthrough.ipynb")


def test_add_a_new_llm(tiny_graph, tmp_path, monkeypatch):
    from hlv_assets.store import registry
    from hlv_assets.store.db import get_engine

    session_db = output_dir() / "hlv.db"
    _copy_store(tmp_path / "home")
    monkeypatch.setenv("HLV_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert os.environ.get("HLV_PROFILE") == "tiny"
    _execute("02_add_a_new_llm.ipynb")
    assert "tiny-judge" in {e.slug for e in registry.entries(get_engine(f"sqlite:///{tmp_path / 'home' / 'hlv.db'}"))}
    assert "tiny-judge" not in {e.slug for e in registry.entries(get_engine(f"sqlite:///{session_db}"))}
