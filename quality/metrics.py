"""The metric definitions table: one row per metric, used by normalisation, the quality
suites, the simulator and the docs alike.

Ranges: ``physical`` is what the instrument or the world allows (outside -> quarantine);
``plausible`` is what Goyang normally sees (outside -> kept, flagged).
``max_step`` is the largest believable jump of one reading away from both of its neighbours
(an isolated spike; None = not checked). ``stuck_run`` is how many identical consecutive
readings mark a frozen sensor (None where long flat runs are normal: rain, booleans, a lamp's
power). ``values`` lists the allowed values of categorical metrics.

The expected reporting interval per device kind is in ``etl.registry.generate.KINDS`` and on
every registry row (``interval_s``); the quality suites read it from the registry.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    domain: str
    metric: str
    unit: str
    physical: tuple[float, float]
    plausible: tuple[float, float]
    max_step: float | None
    description_en: str
    description_ko: str
    stuck_run: int | None = None
    values: tuple[float, ...] | None = None


METRICS: tuple[Metric, ...] = (
    Metric("air_quality", "pm10", "ug/m3", (0, 2000), (0, 600), 300, "Particulate matter <=10 µm", "미세먼지(PM10)", stuck_run=12),
    Metric("air_quality", "pm25", "ug/m3", (0, 1000), (0, 300), 200, "Particulate matter <=2.5 µm", "초미세먼지(PM2.5)", stuck_run=12),
    Metric("air_quality", "o3", "ppm", (0, 1.0), (0, 0.3), 0.1, "Ozone", "오존"),
    Metric("air_quality", "no2", "ppm", (0, 2.0), (0, 0.3), 0.1, "Nitrogen dioxide", "이산화질소"),
    Metric("air_quality", "co", "ppm", (0, 50), (0, 15), 5, "Carbon monoxide", "일산화탄소"),
    Metric("air_quality", "so2", "ppm", (0, 1.0), (0, 0.2), 0.05, "Sulphur dioxide", "아황산가스"),
    Metric("weather", "temperature", "degC", (-50, 60), (-25, 40), 5, "Air temperature", "기온", stuck_run=18),
    Metric("weather", "humidity", "%", (0, 100), (5, 100), 30, "Relative humidity", "상대습도"),
    Metric("weather", "wind_speed", "m/s", (0, 75), (0, 30), 15, "Wind speed", "풍속"),
    Metric("weather", "wind_dir", "deg", (0, 360), (0, 360), None, "Wind direction", "풍향"),
    Metric("weather", "rain", "mm", (0, 300), (0, 80), None, "Rainfall in the interval", "강수량"),
    Metric("weather", "pressure", "hPa", (850, 1090), (960, 1045), 3, "Station pressure", "기압", stuck_run=18),
    Metric("water_quality", "ph", "pH", (0, 14), (5.5, 9.5), 1, "pH", "수소이온농도", stuck_run=16),
    Metric("water_quality", "dissolved_oxygen", "mg/L", (0, 25), (2, 18), 3, "Dissolved oxygen", "용존산소", stuck_run=16),
    Metric("water_quality", "turbidity", "NTU", (0, 4000), (0, 500), 200, "Turbidity", "탁도"),
    Metric("water_quality", "conductivity", "uS/cm", (0, 20000), (50, 2000), 500, "Electrical conductivity", "전기전도도", stuck_run=16),
    Metric("water_quality", "water_temp", "degC", (-2, 45), (0, 32), 3, "Water temperature", "수온", stuck_run=16),
    Metric("waste_bins", "fill_level", "%", (0, 100), (0, 100), None, "Bin fill level", "적재율"),
    Metric("waste_bins", "distance", "mm", (0, 5000), (30, 4500), None, "Ultrasonic distance to waste", "초음파 거리"),
    Metric("waste_bins", "battery", "%", (0, 100), (5, 100), 10, "Battery level", "배터리 잔량"),
    Metric("waste_bins", "tilt", "bool", (0, 1), (0, 0), None, "Bin tilted (1) or upright (0)", "기울어짐", values=(0, 1)),
    Metric("parking", "occupied", "bool", (0, 1), (0, 1), None, "Space occupied (1) or free (0)", "주차 여부", values=(0, 1)),
    Metric("parking", "temperature", "degC", (-40, 85), (-25, 60), None, "Sensor temperature", "센서 온도"),
    Metric("streetlights", "lamp_on", "bool", (0, 1), (0, 1), None, "Lamp on (1) or off (0)", "점등 여부", values=(0, 1)),
    Metric("streetlights", "power", "W", (0, 500), (0, 250), None, "Electrical power", "소비전력"),
    Metric("streetlights", "dimming", "%", (0, 100), (0, 100), None, "Dimming level", "조도 단계"),
    Metric("streetlights", "fault_code", "code", (0, 255), (0, 0), None, "Controller fault code (0 = none)", "고장 코드"),
    Metric("daycare_safety", "arrival", "count", (1, 1), (1, 1), None, "A tag passed the gate inbound", "등원", values=(1,)),
    Metric("daycare_safety", "departure", "count", (1, 1), (1, 1), None, "A tag passed the gate outbound", "하원", values=(1,)),
)

DOMAINS: tuple[str, ...] = (
    "air_quality", "weather", "water_quality", "waste_bins", "parking", "streetlights", "daycare_safety",
)


def metric_table() -> dict[tuple[str, str], Metric]:
    return {(m.domain, m.metric): m for m in METRICS}


def canonical_units() -> dict[str, str]:
    """metric -> canonical unit (metric names are unique across domains except temperature)."""
    return {m.metric: m.unit for m in METRICS}
