"""Which trained models a sweep keeps (`run.keep_models`): every done cell's (`all`), or per arm and fraction the one
of the cell with the best validation score (`best`), picked as the report picks a best cell
(`study.analysis.summaries.best_cell`: the stored monitor value, ties by seed then run id; never a test metric).

Each worker sends its cell's model back with the result; the keeper writes it before the row only when it is kept
(with `best`: when the cell beats the arm and fraction's cells stored so far), then deletes the model it replaces.
A kill at any moment leaves every stored row of such a sweep with its model, or with a better cell's: nothing is lost,
and `settle` finishes what a kill left half done. Cells stored without a model (before models were kept) are
`missing`: only training them again gives their model.
"""

from __future__ import annotations

import pandas as pd

from study.analysis.summaries import ARM_COLUMNS, best_cell
from study.core.vocabulary import KEEP_MODELS, CellStatus
from study.plan.cells import Cell
from study.store.models import KeptModel
from study.store.results import ResultStore

_COLUMNS = [*ARM_COLUMNS, "fraction", "seed", "run_id", "monitor", "monitor_value"]  # what best_cell reads


class ModelKeeper:
    """Stores each result of a sweep with its model when the mode keeps it, and deletes the models it no longer
    keeps; only the planned cells count."""

    def __init__(self, mode: str, cells: list[Cell], store: ResultStore):
        if mode not in KEEP_MODELS[1:]:
            raise ValueError(f"internal error: keep-models mode {mode!r} keeps nothing")
        self.mode, self.store = mode, store
        self.cells = {cell.run_id: cell for cell in cells}
        stored = store.cells()
        stored = stored[stored["run_id"].isin(self.cells) & (stored["status"] == CellStatus.DONE)]
        self.done = stored[_COLUMNS].reset_index(drop=True)

    def put(self, row: dict, predictions: pd.DataFrame | None, model: KeptModel | None) -> None:
        """Store a cell's result, with its model first when it is kept; then delete the model it replaces."""
        counted = row["status"] == CellStatus.DONE and row["run_id"] in self.cells
        if counted:
            self.done = pd.concat([self.done[self.done["run_id"] != row["run_id"]],
                                   pd.DataFrame([{column: row.get(column) for column in _COLUMNS}])],
                                  ignore_index=True)
        keep = counted and model is not None and row["run_id"] in self._wanted_among(self._group(row["run_id"]))
        self.store.put(row, predictions, model if keep else None)
        if counted:
            self._remove_unwanted(self._group(row["run_id"]))

    def settle(self) -> list[Cell]:
        """Delete every kept model of a planned cell that the mode does not keep (or whose row a kill kept from being
        stored); the cells whose kept model is missing (stored without one), to train again."""
        groups = {(cell.arm.label, cell.fraction) for cell in self.cells.values()}
        wanted = set().union(*(self._wanted_among(self._group_of(arm, fraction)) for arm, fraction in groups))
        kept = self.store.models.kept()
        self.store.models.remove([run_id for run_id in kept if run_id in self.cells and run_id not in wanted])
        return [cell for run_id, cell in self.cells.items() if run_id in wanted and run_id not in kept]

    def _group(self, run_id: str) -> pd.DataFrame:
        cell = self.cells[run_id]
        return self._group_of(cell.arm.label, cell.fraction)

    def _group_of(self, arm: str, fraction: float) -> pd.DataFrame:
        """The done planned cells of one arm and fraction."""
        return self.done[(self.done["arm"] == arm) & (self.done["fraction"] == fraction)]

    def _wanted_among(self, group: pd.DataFrame) -> set[str]:
        """The run ids of the group whose models the mode keeps."""
        if group.empty or self.mode == "all":
            return set(group["run_id"])
        best = best_cell(group, [group["arm"].iloc[0]], group["fraction"].iloc[0])
        assert best is not None  # the group is not empty
        return {best["run_id"]}

    def _remove_unwanted(self, group: pd.DataFrame) -> None:
        wanted = self._wanted_among(group)
        kept = self.store.models.kept()
        self.store.models.remove([run_id for run_id in group["run_id"] if run_id in kept and run_id not in wanted])
