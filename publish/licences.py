"""Licences of the sources and of the published datasets, and the derivative rule.

KOGL (공공누리, Korea Open Government Licence) types: 1 attribution; 2 attribution, no
commercial use; 3 attribution, no derivatives (변경금지); 4 both restrictions. A dataset
built from a source whose licence forbids derivatives may only be published when the
catalogue names that source in the dataset's ``derivatives_permitted`` with the basis for it;
otherwise the release fails (:func:`check_derivatives`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Licence:
    id: str
    name_ko: str
    name_en: str
    url: str
    derivatives: bool
    commercial: bool


LICENCES: dict[str, Licence] = {lic.id: lic for lic in (
    Licence("KOGL-1", "공공누리 제1유형: 출처표시", "KOGL Type 1: attribution",
            "https://www.kogl.or.kr/info/licenseType1.do", True, True),
    Licence("KOGL-2", "공공누리 제2유형: 출처표시, 상업적 이용금지", "KOGL Type 2: attribution, non-commercial",
            "https://www.kogl.or.kr/info/licenseType2.do", True, False),
    Licence("KOGL-3", "공공누리 제3유형: 출처표시, 변경금지", "KOGL Type 3: attribution, no derivatives",
            "https://www.kogl.or.kr/info/licenseType3.do", False, True),
    Licence("KOGL-4", "공공누리 제4유형: 출처표시, 상업적 이용금지, 변경금지",
            "KOGL Type 4: attribution, non-commercial, no derivatives",
            "https://www.kogl.or.kr/info/licenseType4.do", False, False),
    Licence("CC-BY-4.0", "크리에이티브 커먼즈 저작자표시 4.0", "Creative Commons Attribution 4.0",
            "https://creativecommons.org/licenses/by/4.0/", True, True),
    # A private source (personal data): nothing of it is open; the city may publish its own
    # anonymised aggregates of it (the privacy gate decides what may leave).
    Licence("none", "비공개 (개인정보)", "not open (personal data)", "", True, False),
)}


class LicenceError(ValueError):
    """A release would publish a derivative that a source's licence forbids."""


def licence(licence_id: str) -> Licence:
    try:
        return LICENCES[licence_id]
    except KeyError:
        raise LicenceError(f"unknown licence {licence_id!r}; known: {', '.join(LICENCES)}") from None


def check_derivatives(dataset_id: str, sources: dict[str, str], permitted: dict[str, str]) -> None:
    """Raise unless every source (id → licence id) allows derivatives or is permitted with a basis."""
    blocked = [(sid, lic) for sid, lic in sorted(sources.items())
               if not licence(lic).derivatives and not (permitted.get(sid) or "").strip()]
    if blocked:
        names = ", ".join(f"{sid} ({licence(lic).name_en})" for sid, lic in blocked)
        raise LicenceError(
            f"dataset {dataset_id} is derived from {names}, whose licence forbids derivatives; "
            f"publish it only with a basis for it in the catalogue "
            f"(datasets.{dataset_id}.derivatives_permitted.<source>: why this use is allowed)")
