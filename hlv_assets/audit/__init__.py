"""`hlv audit <id>`: from one result row back to the raw files, through the results store and Dagster.

The chain of a row: the row and its earlier versions (`row.py`); the asset partition and run that wrote it,
credited only when that run committed the values (a materialization of the asset there and no failed
blocking check); the Dagster materializations it was built from (for each upstream partition, mapped as the
asset graph maps it, the latest materialization before its reader's, checked against the input data version
the reader recorded, so the chain is the one that ran, not today's latest), with Dagster's stale status and
whether anything upstream was rebuilt since (`records.py`); for an MJD its judge (registry spec, the identity
the run recorded, the judgment records), the prompt templates with their hashes, the explanation source and
its selection rule (SPEC §2), the generating LLM's calls (`sections.py`, `sources.py`); for a fine-tune its
checkpoints (sha256 re-checked) and then the chain of the distribution it was trained on; last the raw input
files: the sha256 each raw asset recorded, the pinned one, and the file on disk now (`sources.py`). Without a
Dagster instance the store-side half is still printed. `report.py` puts it together.
"""

from hlv_assets.audit.report import audit
from hlv_assets.audit.row import AuditError
from hlv_assets.audit.sources import _templates, selection_rule

__all__ = ["AuditError", "_templates", "audit", "selection_rule"]
