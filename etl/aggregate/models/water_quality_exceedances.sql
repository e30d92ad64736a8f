-- water_quality_exceedances: one row per limit exceedance event of a water-quality probe and metric,
-- per KST day. 수질 기준 초과 사례. An event is a run of consecutive accepted readings of one probe and
-- metric beyond the same bound of its limit (water_limits, as water_quality_hourly); readings that are
-- missing or quarantined leave no gap, so they neither end nor split an event. It ends at the first
-- later reading that is no longer beyond that bound. Events are clipped to the KST day, so that a
-- date's rows depend on that date's readings only and late data rebuilds its own dates: an event
-- across midnight is one row on each day, the earlier with `open_at_end`, the later with
-- `open_at_start`. [period_start, period_end) is the part of the day the event covers: from its first
-- exceeding reading (the start of the day when open at start) to the first reading back within the
-- limit (the end of the day when open at end); `date` is the KST date of period_start.
-- Parameters: $read_dates (KST dates: the dates to rebuild; no lookback).
-- @column date: KST date of period_start (partition)
-- @column period_start: start of the event on this day, UTC: start_ts, or the start of the KST day when open_at_start
-- @column period_end: end of the event on this day, UTC: end_ts, or the end of the KST day when open_at_end
-- @column device_id: water-quality probe (view devices)
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column metric: metric beyond its limit
-- @column unit: unit of the metric (and of limit_value and peak_value)
-- @column bound: the bound crossed: min (reading below min_value) or max (reading above max_value)
-- @column limit_value: value of the bound crossed
-- @column limit_name_en: the limit, English (water_limits)
-- @column limit_name_ko: the limit, Korean
-- @column limit_basis: where the limit comes from (river standard or city alert level)
-- @column start_ts: first exceeding reading of the event on this day, UTC
-- @column end_ts: first reading back within the limit, UTC; when open_at_end, the last exceeding reading of the day
-- @column open_at_start: the day's first reading of this probe and metric already exceeded: the event may have begun the day before (that date's row with open_at_end)
-- @column open_at_end: the day's last reading of this probe and metric still exceeded: the event may go on the next day
-- @column peak_value: the reading furthest beyond the bound (highest for max, lowest for min)
-- @column peak_ts: time of the peak reading (the first, when repeated), UTC
-- @column readings: exceeding readings in the event on this day
-- @column flagged: of those, readings with a quality flag
-- @column duration_min: minutes from period_start to period_end
WITH readings AS (
    SELECT s.device_id, s.metric, s.ts, s.value, s.unit, s.quality_flag, s.date,
           CASE WHEN s.value < l.min_value THEN 'min' WHEN s.value > l.max_value THEN 'max' END AS bound
    FROM silver s JOIN water_limits l ON l.metric = s.metric
    WHERE s.domain = 'water_quality' AND s.date IN (SELECT unnest($read_dates))
),
ordered AS (
    SELECT *, row_number() OVER w AS n, lead(ts) OVER w AS next_ts,
           CASE WHEN bound IS DISTINCT FROM lag(bound) OVER w THEN 1 ELSE 0 END AS starts_run
    FROM readings
    WINDOW w AS (PARTITION BY device_id, metric, date ORDER BY ts)
),
runs AS (
    SELECT *, sum(starts_run) OVER (PARTITION BY device_id, metric, date ORDER BY ts
                                    ROWS UNBOUNDED PRECEDING) AS run
    FROM ordered
),
events AS (
    SELECT device_id, metric, date, run, any_value(bound) AS bound, any_value(unit) AS unit,
           min(ts) AS start_ts, bool_or(n = 1) AS open_at_start, bool_or(next_ts IS NULL) AS open_at_end,
           CASE WHEN bool_or(next_ts IS NULL) THEN max(ts) ELSE max(next_ts) END AS end_ts,
           CASE WHEN any_value(bound) = 'max' THEN max(value) ELSE min(value) END AS peak_value,
           first(ts ORDER BY CASE WHEN bound = 'max' THEN -value ELSE value END, ts) AS peak_ts,
           count(*) AS readings, count(quality_flag) AS flagged
    FROM runs
    WHERE bound IS NOT NULL
    GROUP BY device_id, metric, date, run
),
clipped AS (
    SELECT e.*,
           CASE WHEN e.open_at_start THEN CAST(e.date AS DATE)::TIMESTAMP AT TIME ZONE 'Asia/Seoul'
                ELSE e.start_ts END AS period_start,
           CASE WHEN e.open_at_end THEN (CAST(e.date AS DATE) + INTERVAL 1 DAY) AT TIME ZONE 'Asia/Seoul'
                ELSE e.end_ts END AS period_end
    FROM events e
)
SELECT c.date, c.period_start, c.period_end, c.device_id, v.district_code, v.district_ko, v.district_en,
       c.metric, c.unit, c.bound, CASE c.bound WHEN 'max' THEN l.max_value ELSE l.min_value END AS limit_value,
       l.name_en AS limit_name_en, l.name_ko AS limit_name_ko, l.basis AS limit_basis,
       c.start_ts, c.end_ts, c.open_at_start, c.open_at_end, c.peak_value, c.peak_ts, c.readings, c.flagged,
       date_diff('second', c.period_start, c.period_end) / 60.0 AS duration_min
FROM clipped c
JOIN water_limits l ON l.metric = c.metric
LEFT JOIN devices v ON v.device_id = c.device_id
