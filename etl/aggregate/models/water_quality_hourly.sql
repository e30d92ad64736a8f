-- water_quality_hourly: one row per water-quality probe (수질 측정기) and hour, against the limits.
-- 측정기별 시간 수질. Hour-beginning: the hour [period_start, period_end). Values are means of the hour's
-- accepted readings (flagged ones included, counted in `flagged`). A reading exceeds when it is outside
-- [min_value, max_value] of its metric in etl/config/water_limits.yaml (the table water_limits: Korean
-- river standard 하천 생활환경기준 for pH and dissolved oxygen, city alert levels for the rest); a reading
-- on the bound does not. Exceedance events are in water_quality_exceedances.
-- Parameters: $read_dates (KST dates: the dates to rebuild; no lookback).
-- @column date: KST date of period_start (partition)
-- @column hour: KST hour of period_start, 0-23
-- @column period_start: start of the hour, UTC
-- @column period_end: end of the hour, UTC
-- @column device_id: water-quality probe (view devices)
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column ph: pH, hourly mean
-- @column dissolved_oxygen: dissolved oxygen, hourly mean, mg/L
-- @column turbidity: turbidity, hourly mean, NTU
-- @column conductivity: electrical conductivity, hourly mean, µS/cm
-- @column water_temp: water temperature, hourly mean, °C
-- @column exceeding_readings: accepted readings of the hour outside their metric's limit (water_limits)
-- @column exceeding_metrics: metrics with a reading outside the limit this hour, sorted and ';'-joined; null when none
-- @column expected: readings expected in the hour (metrics x 3600 / reporting interval)
-- @column observed: readings accepted in the hour
-- @column flagged: accepted readings with a quality flag
-- @column missing_source: readings the source itself marked missing or invalid (quarantined: source_missing, source_flagged, sentinel, instrument_status)
-- @column missing_quarantined: readings quarantined for other reasons (docs/QUALITY.md)
-- @column missing_offline: expected readings that never arrived (device offline or late)
WITH hours AS (
    SELECT d AS day, h AS hour, (d + to_hours(h)) AT TIME ZONE 'Asia/Seoul' AS period_start
    FROM (SELECT CAST(unnest($read_dates) AS DATE) AS d), range(24) t(h)
),
grid AS (
    SELECT v.device_id, v.district_code, v.district_ko, v.district_en,
           len(string_split(v.metrics, ' ')) * 3600 // nullif(v.interval_s, 0) AS expected,
           h.day, h.hour, h.period_start
    FROM devices v JOIN hours h ON v.install_date <= h.day
    WHERE v.kind = 'water_probe'
),
hourly AS (
    SELECT s.device_id, date_trunc('hour', s.ts) AS period_start,
           avg(s.value) FILTER (s.metric = 'ph') AS ph,
           avg(s.value) FILTER (s.metric = 'dissolved_oxygen') AS dissolved_oxygen,
           avg(s.value) FILTER (s.metric = 'turbidity') AS turbidity,
           avg(s.value) FILTER (s.metric = 'conductivity') AS conductivity,
           avg(s.value) FILTER (s.metric = 'water_temp') AS water_temp,
           count(*) FILTER (s.value < l.min_value OR s.value > l.max_value) AS exceeding_readings,
           string_agg(DISTINCT s.metric, ';' ORDER BY s.metric) FILTER (s.value < l.min_value OR s.value > l.max_value)
               AS exceeding_metrics,
           count(*) AS observed, count(s.quality_flag) AS flagged
    FROM silver s LEFT JOIN water_limits l ON l.metric = s.metric
    WHERE s.domain = 'water_quality' AND s.date IN (SELECT unnest($read_dates))
    GROUP BY ALL
),
quarantined AS (
    SELECT device_id, date_trunc('hour', ts) AS period_start,
           count(*) FILTER (source_marked(reason))
               AS missing_source,
           count(*) FILTER (NOT source_marked(reason))
               AS missing_quarantined
    FROM quarantine
    WHERE date IN (SELECT unnest($read_dates)) AND domain = 'water_quality' AND device_id IS NOT NULL
      AND ts IS NOT NULL
    GROUP BY ALL
),
series AS (
    SELECT g.*, h.ph, h.dissolved_oxygen, h.turbidity, h.conductivity, h.water_temp,
           coalesce(h.exceeding_readings, 0) AS exceeding_readings, h.exceeding_metrics,
           coalesce(h.observed, 0) AS observed, coalesce(h.flagged, 0) AS flagged,
           coalesce(q.missing_source, 0) AS missing_source, coalesce(q.missing_quarantined, 0) AS missing_quarantined
    FROM grid g
    LEFT JOIN hourly h ON h.device_id = g.device_id AND h.period_start = g.period_start
    LEFT JOIN quarantined q ON q.device_id = g.device_id AND q.period_start = g.period_start
)
SELECT strftime(day, '%Y-%m-%d') AS date, hour::INTEGER AS hour, period_start,
       period_start + INTERVAL 1 HOUR AS period_end, device_id, district_code, district_ko, district_en,
       ph, dissolved_oxygen, turbidity, conductivity, water_temp, exceeding_readings, exceeding_metrics,
       expected, observed, flagged, missing_source, missing_quarantined,
       greatest(coalesce(expected, 0) - observed - missing_source - missing_quarantined, 0) AS missing_offline
FROM series
