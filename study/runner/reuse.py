"""Never train a cell twice: a cell that another protocol in the same results directory already finished, under
the same run id, is copied into this protocol's store instead of run.

A run id hashes everything that changes a result (settings, fraction, seed, dataset content, weights), never the
protocol's name, so two protocols that share an arm share its cells. The copy keeps every stored value, names this
protocol in `protocol` and the protocol it came from in `adopted_from`. Only finished cells with their predictions
are copied; failed ones run again here.
"""

from __future__ import annotations

import logging

from study.core.vocabulary import CellStatus
from study.plan.cells import Cell
from study.store.results import ResultStore

log = logging.getLogger(__name__)


def adopt_finished_cells(cells: list[Cell], store: ResultStore) -> int:
    """Copy into store every cell of `cells` it lacks that a sibling protocol's store finished; how many were copied.

    Call under the store's run lock: the copies are ordinary atomic writes of this store.
    """
    stored = store.statuses()
    wanted = {cell.run_id for cell in cells if cell.run_id not in stored}
    results_dir = store.root.parent
    siblings = sorted(path.name for path in results_dir.iterdir()
                      if path.is_dir() and path != store.root and not path.name.startswith(".")) if wanted else []
    adopted = 0
    for name in siblings:
        source = ResultStore(results_dir, name)
        for run_id in sorted(wanted):
            row = source.row(run_id)
            if row is None or row.get("status") != CellStatus.DONE:
                continue
            predictions = source.predictions(run_id)
            if predictions is None:
                continue
            row |= {"protocol": store.root.name, "adopted_from": row.get("adopted_from") or name}
            store.put(row, predictions)
            wanted.discard(run_id)
            adopted += 1
    if adopted:
        log.info("copied %d finished cells from other protocols' stores", adopted)
    return adopted
