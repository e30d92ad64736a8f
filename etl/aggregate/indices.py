"""Air-quality indices per station-hour: Korea's CAI (통합대기환경지수) and the US EPA AQI.

The breakpoint tables are plain data. The pure-Python functions are the reference; ``register``
puts the same tables and logic into a DuckDB connection as tables and macros for the SQL models.
Both sides truncate a concentration to whole "steps" of the table's precision and interpolate in
integers, so they agree exactly, float noise included (tests/unit/test_indices.py checks it on
every band edge). Methods, choices and sources: docs/INDICES.md.

Pollutant names are the lake's metrics: pm10, pm25 (µg/m³); o3, no2, co, so2 (ppm).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import count
from typing import Any, Mapping, NamedTuple, Sequence

POLLUTANTS = ("pm25", "pm10", "o3", "no2", "co", "so2")  # also the tie-break order for the main pollutant
PARTICLES = ("pm25", "pm10")
GASES = ("o3", "no2", "co", "so2")

EPSILON = 1e-6  # absorbs binary noise when truncating (0.029 * 1000 == 28.999999999999996)
CEILING = 1e9  # concentrations are clamped here first: far above every table, inside BIGINT


@dataclass(frozen=True)
class Band:
    """Concentrations lo_conc..hi_conc (inclusive, at ``decimals`` places) map onto lo_index..hi_index."""

    pollutant: str
    averaging: str  # "1h", "8h" or "24h"
    lo_conc: float
    hi_conc: float
    lo_index: int
    hi_index: int
    grade: int
    decimals: int  # truncation precision of the input (official rule per table)
    unit: str
    is_default: bool = True  # the averaging used when none is named (US AQI ozone has two)

    @property
    def lo_step(self) -> int:
        return round(self.lo_conc * 10**self.decimals)

    @property
    def hi_step(self) -> int:
        return round(self.hi_conc * 10**self.decimals)


@dataclass(frozen=True)
class Grade:
    grade: int
    lo_index: int
    hi_index: int
    name_ko: str
    name_en: str


@dataclass(frozen=True)
class IndexTable:
    method: str
    version: str
    bands: tuple[Band, ...]
    grades: tuple[Grade, ...]

    def bands_of(self, pollutant: str, averaging: str | None = None) -> tuple[Band, ...]:
        return tuple(b for b in self.bands if b.pollutant == pollutant
                     and (b.averaging == averaging if averaging else b.is_default))

    def grade_of(self, index: int | None) -> Grade | None:
        return next((g for g in self.grades if index is not None and g.lo_index <= index <= g.hi_index), None)


class IndexResult(NamedTuple):
    index: int
    grade: int
    main_pollutant: str


def _bands(pollutant: str, averaging: str, unit: str, decimals: int, concs: Sequence[tuple[float, float]],
           indices: Sequence[tuple[int, int]], first_grade: int = 1, is_default: bool = True) -> tuple[Band, ...]:
    """Consecutive bands: concentration pairs laid over the index bands from ``first_grade`` on."""
    return tuple(Band(pollutant, averaging, lo, hi, ilo, ihi, g, decimals, unit, is_default)
                 for g, (lo, hi), (ilo, ihi) in zip(count(first_grade), concs, indices[first_grade - 1:]))


# ---- Korea: 통합대기환경지수 (CAI), AirKorea / Korea Environment Corporation -------------------------
# Breakpoints: AirKorea "통합대기환경지수 안내" (https://www.airkorea.or.kr/eng/khaiInfo?pMENU_NO=166),
# the same table at http://air.jeju.go.kr/contents/atmospheric/cai/summary.htm, and AirKorea's CAI
# calculator (https://www.airkorea.or.kr/web/caiCalculator?pMENU_NO=147). Gases on 1-hour values,
# PM on the 24-hour predicted moving concentration. Truncation follows the tables' precision
# (0.001 ppm; CO 0.01 ppm; PM 1 µg/m³), as in the aqipy implementation (aqipy/kr_cai.py).
CAI_INDEX = ((0, 50), (51, 100), (101, 250), (251, 500))
CAI = IndexTable("airkorea-cai", "airkorea-cai-2024", (
    *_bands("so2", "1h", "ppm", 3, ((0, 0.020), (0.021, 0.050), (0.051, 0.150), (0.151, 1.0)), CAI_INDEX),
    *_bands("co", "1h", "ppm", 2, ((0, 2.0), (2.01, 9.0), (9.01, 15.0), (15.01, 50.0)), CAI_INDEX),
    *_bands("o3", "1h", "ppm", 3, ((0, 0.030), (0.031, 0.090), (0.091, 0.150), (0.151, 0.600)), CAI_INDEX),
    *_bands("no2", "1h", "ppm", 3, ((0, 0.030), (0.031, 0.060), (0.061, 0.200), (0.201, 2.0)), CAI_INDEX),
    *_bands("pm10", "24h", "ug/m3", 0, ((0, 30), (31, 80), (81, 150), (151, 600)), CAI_INDEX),
    *_bands("pm25", "24h", "ug/m3", 0, ((0, 15), (16, 35), (36, 75), (76, 500)), CAI_INDEX),
), (
    Grade(1, 0, 50, "좋음", "Good"),
    Grade(2, 51, 100, "보통", "Moderate"),
    Grade(3, 101, 250, "나쁨", "Unhealthy"),
    Grade(4, 251, 500, "매우나쁨", "Very Unhealthy"),
))
# The calculator computes a CAI only when PM10, PM2.5, NO2 and O3 are all given; SO2 and CO may be absent.
CAI_REQUIRED = ("pm25", "pm10", "o3", "no2")
# Two pollutants at 나쁨 or worse add 50 to the highest sub-index, three or more add 75 (AirKorea's
# rule as published by Seoul's air-quality site; seen in AirKorea data: 166 = 116 + 50, 2020-10-28).
CAI_BAD_INDEX = 101
CAI_PENALTY = {2: 50, 3: 75}
CAI_MAX = 500


@dataclass(frozen=True)
class PmPrediction:
    """AirKorea's 24-hour predicted moving concentration (24시간 예측이동농도), per PM size:
    C24E = (C12·12 + C4·12) / 24, C12 the mean of the last 12 hours, C4 the mean of the last 4 hours
    after adjusting each: C ≥ threshold and ratio_lo ≤ C/C12 ≤ ratio_hi → factor·C, else C."""

    pollutant: str
    threshold: float  # M: 70 µg/m³ for PM10, 30 µg/m³ for PM2.5 (AirKorea CAI calculator)
    ratio_lo: float
    ratio_hi: float
    factor: float
    min_hours_12: int  # ours, not AirKorea's (unpublished): 75 % of the hours, as EPA's averages
    min_hours_4: int


PM_PREDICTION = {p.pollutant: p for p in (PmPrediction("pm10", 70.0, 0.9, 1.7, 0.75, 9, 3),
                                          PmPrediction("pm25", 30.0, 0.9, 1.7, 0.75, 9, 3))}

# ---- United States: EPA Air Quality Index, with the 2024 PM2.5 revision --------------------------
# EPA, Technical Assistance Document for the Reporting of Daily Air Quality - the AQI,
# EPA-454/B-24-002 (May 2024), Table 6; 40 CFR 58 Appendix G as amended 2024-03-06 (89 FR 16202);
# fact sheet https://www.epa.gov/system/files/documents/2024-02/pm-naaqs-air-quality-index-fact-sheet.pdf
# Truncation per the TAD: O3 0.001 ppm, PM2.5 0.1 µg/m³, PM10 1 µg/m³, CO 0.1 ppm, SO2 and NO2 1 ppb.
# SO2 and NO2 are published in ppb; stored here in the lake's ppm (÷ 1000), so 1 ppb = 3 decimals.
AQI_INDEX = ((0, 50), (51, 100), (101, 150), (151, 200), (201, 300), (301, 500))
AQI = IndexTable("us-epa-aqi", "us-epa-aqi-2024", (
    *_bands("pm25", "24h", "ug/m3", 1,
            ((0.0, 9.0), (9.1, 35.4), (35.5, 55.4), (55.5, 125.4), (125.5, 225.4), (225.5, 325.4)), AQI_INDEX),
    *_bands("pm10", "24h", "ug/m3", 0,
            ((0, 54), (55, 154), (155, 254), (255, 354), (355, 424), (425, 604)), AQI_INDEX),
    # 8-hour O3 defines no AQI above 300; 1-hour O3 starts at 101 (TAD Table 6 notes).
    *_bands("o3", "8h", "ppm", 3, ((0.0, 0.054), (0.055, 0.070), (0.071, 0.085), (0.086, 0.105), (0.106, 0.200)),
            AQI_INDEX),
    *_bands("o3", "1h", "ppm", 3, ((0.125, 0.164), (0.165, 0.204), (0.205, 0.404), (0.405, 0.604)), AQI_INDEX,
            first_grade=3, is_default=False),
    *_bands("co", "8h", "ppm", 1, ((0.0, 4.4), (4.5, 9.4), (9.5, 12.4), (12.5, 15.4), (15.5, 30.4), (30.5, 50.4)),
            AQI_INDEX),
    # 1-hour SO2 defines no AQI above 200 (higher values need 24-hour SO2): the table stops at 304 ppb.
    *_bands("so2", "1h", "ppm", 3, ((0.0, 0.035), (0.036, 0.075), (0.076, 0.185), (0.186, 0.304)), AQI_INDEX),
    *_bands("no2", "1h", "ppm", 3,
            ((0.0, 0.053), (0.054, 0.100), (0.101, 0.360), (0.361, 0.649), (0.650, 1.249), (1.250, 2.049)),
            AQI_INDEX),
), (
    Grade(1, 0, 50, "좋음", "Good"),
    Grade(2, 51, 100, "보통", "Moderate"),
    Grade(3, 101, 150, "민감군 영향", "Unhealthy for Sensitive Groups"),
    Grade(4, 151, 200, "나쁨", "Unhealthy"),
    Grade(5, 201, 300, "매우 나쁨", "Very Unhealthy"),
    Grade(6, 301, 500, "위험", "Hazardous"),
))
EIGHT_HOURS = (8, 6)  # an 8-hour mean needs 6 of its 8 hours (75 %)
TABLES = {"cai": CAI, "aqi": AQI}


# ---- reference functions ------------------------------------------------------------------------

def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value >= 0


def _steps(value: float, decimals: int) -> int:
    """``value`` truncated to ``decimals`` places, counted in steps of 10**-decimals."""
    return math.floor(min(value, CEILING) * 10**decimals + EPSILON)


def truncate(pollutant: str, value: float | None, index: str = "cai", averaging: str | None = None) -> float | None:
    """``value`` truncated (never rounded) to the precision of ``index``'s table ("cai" or "aqi")."""
    bands = TABLES[index].bands_of(pollutant, averaging)
    if not bands or not _usable(value):
        return None
    return _steps(value, bands[0].decimals) / 10**bands[0].decimals


def _subindex(bands: Sequence[Band], conc: float | None) -> int | None:
    """I = I_lo + (I_hi − I_lo)·(C − C_lo)/(C_hi − C_lo) on the truncated C, rounded half up —
    in integer steps, so SQL gets the very same number. Above the table: its top index."""
    if not bands or not _usable(conc):
        return None
    s = _steps(conc, bands[0].decimals)
    below = [b for b in bands if b.lo_step <= s]
    if not below:
        return None  # under the table's first band (1-hour O3 below 0.125 ppm)
    b = below[-1]
    if s > b.hi_step:
        return b.hi_index
    span, rise = b.hi_step - b.lo_step, b.hi_index - b.lo_index
    return b.lo_index + (2 * rise * (s - b.lo_step) + span) // (2 * span)


def cai_subindex(pollutant: str, conc: float | None) -> int | None:
    """CAI sub-index: gases on a 1-hour ppm value, PM on the 24-hour predicted µg/m³ concentration."""
    return _subindex(CAI.bands_of(pollutant), conc)


def aqi_subindex(pollutant: str, conc: float | None, averaging: str | None = None) -> int | None:
    """US AQI sub-index; ``averaging`` "1h" or "8h" picks the ozone table (default 8h)."""
    return _subindex(AQI.bands_of(pollutant, averaging), conc)


def aqi_o3(conc_8h: float | None, conc_1h: float | None) -> int | None:
    """Ozone's AQI: the higher of the 8-hour and the 1-hour sub-index (TAD: report the maximum)."""
    subs = [i for i in (aqi_subindex("o3", conc_8h, "8h"), aqi_subindex("o3", conc_1h, "1h")) if i is not None]
    return max(subs, default=None)


def cai_grade(index: int | None) -> int | None:
    grade = CAI.grade_of(index)
    return grade.grade if grade else None


def aqi_category(index: int | None) -> int | None:
    grade = AQI.grade_of(index)
    return grade.grade if grade else None


def _top(subindices: Mapping[str, int | None]) -> tuple[int, str] | None:
    unknown = set(subindices) - set(POLLUTANTS)
    if unknown:
        raise ValueError(f"unknown pollutants {sorted(unknown)}")
    present = [(subindices[p], p) for p in POLLUTANTS if subindices.get(p) is not None]
    if not present:
        return None
    top = max(i for i, _ in present)
    return top, next(p for i, p in present if i == top)


def _result(table: IndexTable, index: int, main: str) -> IndexResult:
    grade = table.grade_of(index)
    if grade is None:
        raise ValueError(f"index {index} is outside {table.version}")
    return IndexResult(index, grade.grade, main)


def cai(subindices: Mapping[str, int | None]) -> IndexResult | None:
    """The overall CAI: the highest sub-index plus AirKorea's penalty when two or more pollutants
    are 나쁨 or worse; None when a required pollutant (PM10, PM2.5, NO2, O3) has no sub-index."""
    top = _top(subindices)
    if top is None or any(subindices.get(p) is None for p in CAI_REQUIRED):
        return None
    bad = sum(1 for i in subindices.values() if i is not None and i >= CAI_BAD_INDEX)
    index = min(CAI_MAX, top[0] + CAI_PENALTY.get(min(bad, max(CAI_PENALTY)), 0))
    return _result(CAI, index, top[1])


def us_aqi(subindices: Mapping[str, int | None]) -> IndexResult | None:
    """The AQI: the highest available sub-index (EPA requires no particular pollutant)."""
    top = _top(subindices)
    return _result(AQI, *top) if top else None


def _latest(hourly: Sequence[float | None]) -> float | None:
    return hourly[-1] if hourly else None


def _valid(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def pm_predicted_24h(hourly: Sequence[float | None], pollutant: str) -> float | None:
    """AirKorea's 24-hour predicted moving concentration at the last hour of ``hourly`` (hourly
    values oldest first, None where missing); None when fewer than 9 of the last 12 or 3 of the
    last 4 hours are valid. Each of the last 4 hours is judged against the same C12."""
    rule = PM_PREDICTION[pollutant]
    last12 = _valid(hourly[-12:])
    last4 = _valid(hourly[-4:])
    if len(last12) < rule.min_hours_12 or len(last4) < rule.min_hours_4:
        return None
    c12 = sum(last12) / len(last12)
    adjusted = [rule.factor * c if c >= rule.threshold and rule.ratio_lo <= c / c12 <= rule.ratio_hi else c
                for c in last4]
    c4 = sum(adjusted) / len(adjusted)
    return (c12 * 12 + c4 * 12) / 24


def nowcast(hourly: Sequence[float | None]) -> float | None:
    """EPA's PM NowCast at the last hour of ``hourly`` (oldest first): a 12-hour mean weighted
    w^(i−1) from the newest hour, w = max(c_min/c_max, 0.5); needs 2 of the 3 newest hours."""
    recent = list(reversed(hourly[-12:]))
    if len(_valid(recent[:3])) < 2:
        return None
    valid = [(i, c) for i, c in enumerate(recent) if c is not None]
    c_max, c_min = max(c for _, c in valid), min(c for _, c in valid)
    w = max(c_min / c_max, 0.5) if c_max > 0 else 1.0
    return sum(c * w**i for i, c in valid) / sum(w**i for i, _ in valid)


def trailing_mean(hourly: Sequence[float | None], hours: int, min_valid: int) -> float | None:
    """Mean of the last ``hours`` hours when at least ``min_valid`` of them are valid."""
    window = _valid(hourly[-hours:])
    return sum(window) / len(window) if len(window) >= min_valid and window else None


def cai_for_hour(series: Mapping[str, Sequence[float | None]]) -> IndexResult | None:
    """The CAI of the last hour of ``series`` (pollutant → hourly values, oldest first):
    gases on that hour's value, PM on the 24-hour predicted moving concentration."""
    subs = {p: cai_subindex(p, _latest(series.get(p, ()))) for p in GASES}
    subs |= {p: cai_subindex(p, pm_predicted_24h(series.get(p, ()), p)) for p in PARTICLES}
    return cai(subs)


def us_aqi_for_hour(series: Mapping[str, Sequence[float | None]]) -> IndexResult | None:
    """The US AQI of the last hour of ``series``, as a station-hour row reports it: PM on the
    NowCast, O3 on the higher of its trailing 8-hour mean and 1-hour value, CO on its trailing
    8-hour mean, SO2 and NO2 on the 1-hour value."""
    o3 = series.get("o3", ())
    subs = {p: aqi_subindex(p, nowcast(series.get(p, ()))) for p in PARTICLES}
    subs["o3"] = aqi_o3(trailing_mean(o3, *EIGHT_HOURS), _latest(o3))
    subs["co"] = aqi_subindex("co", trailing_mean(series.get("co", ()), *EIGHT_HOURS))
    subs |= {p: aqi_subindex(p, _latest(series.get(p, ()))) for p in ("so2", "no2")}
    return us_aqi(subs)


# ---- DuckDB -------------------------------------------------------------------------------------

_BREAKPOINT_COLUMNS = """(pollutant VARCHAR, averaging VARCHAR, lo_conc DOUBLE, hi_conc DOUBLE,
    lo_index INTEGER, hi_index INTEGER, grade INTEGER, decimals INTEGER, unit VARCHAR, is_default BOOLEAN,
    lo_step BIGINT, hi_step BIGINT, scale BIGINT, method VARCHAR, version VARCHAR)"""
_GRADE_COLUMNS = """(grade INTEGER, lo_index INTEGER, hi_index INTEGER, name_ko VARCHAR, name_en VARCHAR,
    method VARCHAR, version VARCHAR)"""

_TABLES_DDL = (
    f"CREATE OR REPLACE TABLE cai_breakpoints {_BREAKPOINT_COLUMNS}",
    f"CREATE OR REPLACE TABLE aqi_breakpoints {_BREAKPOINT_COLUMNS}",
    f"CREATE OR REPLACE TABLE cai_grades {_GRADE_COLUMNS}",
    f"CREATE OR REPLACE TABLE aqi_categories {_GRADE_COLUMNS}",
    """CREATE OR REPLACE TABLE cai_pm_prediction (pollutant VARCHAR, threshold DOUBLE, ratio_lo DOUBLE,
        ratio_hi DOUBLE, factor DOUBLE, min_hours_12 INTEGER, min_hours_4 INTEGER)""",
)

# The SQL below is assembled from this module's constants only, never from input.
# The sub-index of the band with the greatest lo_step <= the truncated concentration s.
_SUBINDEX = """arg_max(CASE WHEN s > hi_step THEN hi_index
        ELSE lo_index + (2 * (hi_index - lo_index) * (s - lo_step) + (hi_step - lo_step))
                        // (2 * (hi_step - lo_step)) END, lo_step)"""
_STEPS = f"""CASE WHEN isfinite(CAST(conc AS DOUBLE)) AND conc >= 0
        THEN CAST(floor(least(CAST(conc AS DOUBLE), {CEILING}) * scale + {EPSILON}) AS BIGINT) END AS s"""
_SIX = "pm25, pm10, o3, no2, co, so2"  # argument order of the combining macros (= POLLUTANTS)
_BAD = " + ".join(f"(coalesce({p}, 0) >= {CAI_BAD_INDEX})::INTEGER" for p in POLLUTANTS)

_MACROS = (
    f"""CREATE OR REPLACE MACRO cai_sub(pol, conc) AS (
        SELECT {_SUBINDEX} FROM (SELECT *, {_STEPS} FROM cai_breakpoints WHERE pollutant = pol)
        WHERE lo_step <= s)""",
    f"""CREATE OR REPLACE MACRO aqi_sub(pol, conc, period := NULL) AS (
        SELECT {_SUBINDEX} FROM (SELECT *, {_STEPS} FROM aqi_breakpoints
            WHERE pollutant = pol AND (averaging = period OR (period IS NULL AND is_default)))
        WHERE lo_step <= s)""",
    """CREATE OR REPLACE MACRO aqi_o3(conc_8h, conc_1h) AS
        greatest(aqi_sub('o3', conc_8h, '8h'), aqi_sub('o3', conc_1h, '1h'))""",
    """CREATE OR REPLACE MACRO cai_grade(idx) AS (
        SELECT any_value(grade) FROM cai_grades WHERE idx BETWEEN lo_index AND hi_index)""",
    """CREATE OR REPLACE MACRO aqi_category(idx) AS (
        SELECT any_value(grade) FROM aqi_categories WHERE idx BETWEEN lo_index AND hi_index)""",
    "CREATE OR REPLACE MACRO cai_version() AS (SELECT any_value(version) FROM cai_breakpoints)",
    "CREATE OR REPLACE MACRO aqi_version() AS (SELECT any_value(version) FROM aqi_breakpoints)",
    f"""CREATE OR REPLACE MACRO index_main({_SIX}) AS CASE greatest({_SIX})
        {" ".join(f"WHEN {p} THEN '{p}'" for p in POLLUTANTS)} END""",
    f"""CREATE OR REPLACE MACRO cai_combine({_SIX}) AS CASE
        WHEN {" OR ".join(f"{p} IS NULL" for p in CAI_REQUIRED)} THEN NULL
        ELSE least({CAI_MAX}, greatest({_SIX}) + CASE least({_BAD}, {max(CAI_PENALTY)})
            {" ".join(f"WHEN {n} THEN {add}" for n, add in CAI_PENALTY.items())} ELSE 0 END) END""",
    f"""CREATE OR REPLACE MACRO cai_main({_SIX}) AS
        CASE WHEN cai_combine({_SIX}) IS NOT NULL THEN index_main({_SIX}) END""",
    f"CREATE OR REPLACE MACRO us_aqi_combine({_SIX}) AS greatest({_SIX})",
    f"CREATE OR REPLACE MACRO aqi_main({_SIX}) AS index_main({_SIX})",
    """CREATE OR REPLACE MACRO trailing_mean(vals, hours, min_valid) AS CASE
        WHEN len(list_filter(CAST(vals AS DOUBLE[])[-hours:], x -> x IS NOT NULL)) >= greatest(min_valid, 1)
        THEN list_avg(CAST(vals AS DOUBLE[])[-hours:]) END""",
    """CREATE OR REPLACE MACRO nowcast(vals) AS (
        SELECT CASE WHEN len(list_filter(r[1:3], x -> x IS NOT NULL)) >= 2
            THEN list_sum(list_transform(r, (x, i) -> x * pow(w, i - 1)))
                 / list_sum(list_transform(r, (x, i) -> CASE WHEN x IS NOT NULL THEN pow(w, i - 1) END)) END
        FROM (SELECT r, CASE WHEN list_max(r) > 0 THEN greatest(list_min(r) / list_max(r), 0.5) ELSE 1.0 END AS w
              FROM (SELECT list_reverse(CAST(vals AS DOUBLE[])[-12:]) AS r)))""",
    """CREATE OR REPLACE MACRO pm_predicted_24h(vals, pol) AS (
        SELECT CASE WHEN len(list_filter(w12, x -> x IS NOT NULL)) >= min_hours_12
                     AND len(list_filter(w4, x -> x IS NOT NULL)) >= min_hours_4
            THEN (c12 * 12 + list_avg(list_transform(w4, x -> CASE
                     WHEN x >= threshold AND x / c12 BETWEEN ratio_lo AND ratio_hi THEN factor * x ELSE x END)) * 12)
                 / 24 END
        FROM (SELECT *, list_avg(w12) AS c12
              FROM (SELECT *, CAST(vals AS DOUBLE[])[-12:] AS w12, CAST(vals AS DOUBLE[])[-4:] AS w4
                    FROM cai_pm_prediction WHERE pollutant = pol)))""",
)


def _band_rows(table: IndexTable) -> list[tuple[Any, ...]]:
    return [(b.pollutant, b.averaging, b.lo_conc, b.hi_conc, b.lo_index, b.hi_index, b.grade, b.decimals, b.unit,
             b.is_default, b.lo_step, b.hi_step, 10**b.decimals, table.method, table.version) for b in table.bands]


def _grade_rows(table: IndexTable) -> list[tuple[Any, ...]]:
    return [(g.grade, g.lo_index, g.hi_index, g.name_ko, g.name_en, table.method, table.version)
            for g in table.grades]


def register(con: Any) -> None:
    """Create the index tables (cai_breakpoints, aqi_breakpoints, cai_grades, aqi_categories,
    cai_pm_prediction) and macros (cai_sub, aqi_sub, aqi_o3, cai_grade, aqi_category, cai_combine,
    cai_main, us_aqi_combine, aqi_main, pm_predicted_24h, nowcast, trailing_mean, cai_version,
    aqi_version) in a DuckDB connection; replaces earlier ones."""
    for ddl in _TABLES_DDL:
        con.execute(ddl)
    inserts = (
        ("INSERT INTO cai_breakpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _band_rows(CAI)),
        ("INSERT INTO aqi_breakpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _band_rows(AQI)),
        ("INSERT INTO cai_grades VALUES (?, ?, ?, ?, ?, ?, ?)", _grade_rows(CAI)),
        ("INSERT INTO aqi_categories VALUES (?, ?, ?, ?, ?, ?, ?)", _grade_rows(AQI)),
        ("INSERT INTO cai_pm_prediction VALUES (?, ?, ?, ?, ?, ?, ?)",
         [(r.pollutant, r.threshold, r.ratio_lo, r.ratio_hi, r.factor, r.min_hours_12, r.min_hours_4)
          for r in PM_PREDICTION.values()]),
    )
    for sql, rows in inserts:
        con.executemany(sql, rows)
    for macro in _MACROS:
        con.execute(macro)
