"""Speed-ups for GX Core's pandas validation, installed once per process (quality.validate).

A validation run over a small frame costs GX ~0.1 s whatever its size, and ingest runs two
or three per batch. Most of it is GX redoing the same work many times within a run. Each
patch below keeps the results exactly as they were (tests/unit/test_gx_speed.py compares a
patched and an unpatched process on a batch with every failure kind):

- ``Expectation.configuration`` is rebuilt from the pydantic fields on every access,
  thousands of times per run: cached per instance until one of its fields is set.
- the pandas engine filters the frame again (row condition, rows with missing values
  dropped) for every metric of every expectation, each filter a copy of the whole frame:
  each distinct domain's records are kept for the rest of the run (per thread).
- a row condition ``column == value`` goes through ``DataFrame.query`` (a parser and a
  resolver per column, ~5 ms); it is applied as a boolean mask instead.
- every frame under 1 GB is hashed as it loads, for a batch marker nothing here reads.

Checked against GX 1.x (the version in requirements/lock.txt); each patch falls back to
GX's own code for anything it does not recognise.
"""
from __future__ import annotations

import threading
from typing import Any

_CONFIGS: dict[int, tuple[Any, Any]] = {}
_RUN = threading.local()    # per thread: the active frame and its domains' records


def install() -> None:
    _memoize_expectation_configuration()
    _memoize_domain_records()
    _mask_equality_conditions()
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0


def end_of_run() -> None:
    """Drop the run's domain records (no frame outlives its validation run)."""
    _RUN.data, _RUN.records = None, {}


def _memoize_expectation_configuration() -> None:
    from great_expectations.expectations.expectation import Expectation

    if getattr(Expectation, "_citylake_memo", False):
        return
    build, set_field = Expectation.configuration.fget, Expectation.__setattr__

    def configuration(self: Any) -> Any:
        hit = _CONFIGS.get(id(self))
        if hit is not None and hit[0] is self:
            return hit[1]
        if len(_CONFIGS) > 4096:
            _CONFIGS.clear()
        config = build(self)
        _CONFIGS[id(self)] = (self, config)
        return config

    def setattr_(self: Any, name: str, value: Any) -> None:
        _CONFIGS.pop(id(self), None)
        set_field(self, name, value)

    Expectation.configuration = property(configuration)
    Expectation.__setattr__ = setattr_
    Expectation._citylake_memo = True


def _memoize_domain_records() -> None:
    from great_expectations.execution_engine.pandas_execution_engine import PandasExecutionEngine

    if getattr(PandasExecutionEngine, "_citylake_memo", False):
        return
    get = PandasExecutionEngine.get_domain_records

    def get_domain_records(self: Any, domain_kwargs: dict) -> Any:
        data = self.batch_manager.active_batch_data
        if data is None or domain_kwargs.get("batch_id") not in (None, self.batch_manager.active_batch_id):
            return get(self, domain_kwargs)
        if getattr(_RUN, "data", None) is not data:
            _RUN.data, _RUN.records = data, {}
        key = repr(sorted((k, v) for k, v in domain_kwargs.items() if k != "batch_id"))
        records = _RUN.records.get(key)
        if records is None:
            records = _RUN.records[key] = get(self, domain_kwargs)
        return records

    PandasExecutionEngine.get_domain_records = get_domain_records
    PandasExecutionEngine._citylake_memo = True


def _mask_equality_conditions() -> None:
    from great_expectations.execution_engine.pandas_execution_engine import PandasExecutionEngine
    from great_expectations.expectations.row_conditions import ComparisonCondition, Operator, \
        deserialize_row_condition

    if getattr(PandasExecutionEngine, "_citylake_mask", False):
        return
    apply = PandasExecutionEngine._apply_row_condition_filter

    def apply_row_condition_filter(self: Any, data: Any, row_condition: Any, domain_kwargs: dict) -> Any:
        if isinstance(row_condition, dict):
            row_condition = deserialize_row_condition(row_condition)
        if (isinstance(row_condition, ComparisonCondition) and row_condition.operator == Operator.EQUAL
                and isinstance(row_condition.parameter, str) and row_condition.column.name in data.columns):
            return data[(data[row_condition.column.name] == row_condition.parameter).to_numpy(bool)]
        return apply(self, data, row_condition, domain_kwargs)

    PandasExecutionEngine._apply_row_condition_filter = apply_row_condition_filter
    PandasExecutionEngine._citylake_mask = True
