"""One release of the small fixture lake for the whole security package (building it takes
about a minute): as of 2026-12-05, a week and a half after the lake's day (2026-11-24), so the
daycare rows are past their embargo (``gold_daycare_delay_days``) and are published too."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.lakes import released_lake

AS_OF = date(2026, 12, 5)
AQ = "air-quality-station-hourly"


@dataclass(frozen=True)
class Released:
    root: Path              # the lake is root/lake, the public side root/public
    store: Any              # the public store

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def public(self) -> Path:
        return self.root / "public"


@pytest.fixture(scope="package")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    with released_lake(tmp_path_factory, "security-lake", AS_OF) as (root, store):
        yield Released(root, store)
