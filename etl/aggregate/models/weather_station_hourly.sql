-- weather_station_hourly: one row per living-weather station (생활기상 관측소) and hour. 관측소별 시간 기상.
-- Hour-beginning: the hour [period_start, period_end). Values are the hour's accepted readings (flagged
-- ones included, counted in `flagged`): means, extremes, and the rain sum (each rain reading is the mm of
-- its own interval). Wind direction is the unit-vector mean (EPA-454/R-99-005 §6.2.2): every direction
-- counts alike whatever the speed, so a strong gust does not outweigh the rest of the hour, and
-- 350° with 10° gives 0°; a direction reported with a calm (wind speed 0 at the same time) has no
-- meaning and is left out. Heat index: KMA summer apparent temperature (여름철 체감온도, in use since
-- 2022 for heat-wave warnings) on the hour's mean temperature Ta and humidity RH, with the wet-bulb
-- temperature Tw of Stull (2011, doi:10.1175/JAMC-D-11-0143.1):
-- Tw = Ta·atan(0.151977·√(RH + 8.313659)) + atan(Ta + RH) − atan(RH − 1.67633)
-- + 0.00391838·RH^1.5·atan(0.023101·RH) − 4.686035 and
-- 체감온도 = −0.2442 + 0.55399·Tw + 0.45535·Ta − 0.0022·Tw² + 0.00278·Tw·Ta + 3.0.
-- KMA gives it from May to September only (its winter index is the wind chill), so it is null in
-- the other months (KST month of period_start) and when the hour has no temperature or humidity.
-- Parameters: $read_dates (KST dates: the dates to rebuild; no lookback).
-- @column date: KST date of period_start (partition)
-- @column hour: KST hour of period_start, 0-23
-- @column period_start: start of the hour, UTC
-- @column period_end: end of the hour, UTC
-- @column device_id: weather station (view devices)
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column temperature: air temperature, hourly mean, °C
-- @column temperature_min: lowest air temperature reading of the hour, °C
-- @column temperature_max: highest air temperature reading of the hour, °C
-- @column humidity: relative humidity, hourly mean, %
-- @column pressure: station pressure, hourly mean, hPa
-- @column wind_speed: wind speed, hourly mean of the readings (scalar), m/s
-- @column wind_speed_max: highest wind speed reading of the hour, m/s
-- @column wind_dir: unit-vector mean wind direction, degrees from north 0-360 (to 0.1°); null when calm all hour or when the directions cancel out
-- @column wind_dir_constancy: length of the mean unit vector, 0-1 (1: every reading from the same direction, near 0: no prevailing direction)
-- @column rain: rainfall in the hour, sum of the readings, mm (a lower bound when readings are missing: see missing_*)
-- @column heat_index: KMA summer apparent temperature (여름철 체감온도) of the hourly means, °C; May-September only
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
    WHERE v.kind = 'weather_station'
),
readings AS (
    SELECT device_id, metric, ts, value, quality_flag, date_trunc('hour', ts) AS period_start
    FROM silver WHERE domain = 'weather' AND date IN (SELECT unnest($read_dates))
),
hourly AS (
    SELECT device_id, period_start,
           avg(value) FILTER (metric = 'temperature') AS temperature,
           min(value) FILTER (metric = 'temperature') AS temperature_min,
           max(value) FILTER (metric = 'temperature') AS temperature_max,
           avg(value) FILTER (metric = 'humidity') AS humidity, avg(value) FILTER (metric = 'pressure') AS pressure,
           avg(value) FILTER (metric = 'wind_speed') AS wind_speed,
           max(value) FILTER (metric = 'wind_speed') AS wind_speed_max,
           sum(value) FILTER (metric = 'rain') AS rain,
           count(*) AS observed, count(quality_flag) AS flagged
    FROM readings
    GROUP BY ALL
),
winds AS (        -- mean east (sin) and north (cos) components of the unit vectors
    SELECT d.device_id, d.period_start, avg(sin(radians(d.value))) AS east, avg(cos(radians(d.value))) AS north
    FROM readings d
    LEFT JOIN readings s ON s.device_id = d.device_id AND s.ts = d.ts AND s.metric = 'wind_speed'
    WHERE d.metric = 'wind_dir' AND (s.value IS NULL OR s.value > 0)
    GROUP BY ALL
),
quarantined AS (
    SELECT device_id, date_trunc('hour', ts) AS period_start,
           count(*) FILTER (source_marked(reason))
               AS missing_source,
           count(*) FILTER (NOT source_marked(reason))
               AS missing_quarantined
    FROM quarantine
    WHERE date IN (SELECT unnest($read_dates)) AND domain = 'weather' AND device_id IS NOT NULL AND ts IS NOT NULL
    GROUP BY ALL
),
series AS (
    SELECT g.*, h.temperature, h.temperature_min, h.temperature_max, h.humidity, h.pressure, h.wind_speed,
           h.wind_speed_max, h.rain, sqrt(w.east * w.east + w.north * w.north) AS wind_dir_constancy,
           CASE WHEN sqrt(w.east * w.east + w.north * w.north) >= 1e-6
                THEN (round(degrees(atan2(w.east, w.north)), 1) + 360) % 360 END AS wind_dir,
           CASE WHEN month(g.day) BETWEEN 5 AND 9 THEN
                h.temperature * atan(0.151977 * sqrt(h.humidity + 8.313659)) + atan(h.temperature + h.humidity)
                - atan(h.humidity - 1.67633) + 0.00391838 * pow(h.humidity, 1.5) * atan(0.023101 * h.humidity)
                - 4.686035 END AS wet_bulb,
           coalesce(h.observed, 0) AS observed, coalesce(h.flagged, 0) AS flagged,
           coalesce(q.missing_source, 0) AS missing_source, coalesce(q.missing_quarantined, 0) AS missing_quarantined
    FROM grid g
    LEFT JOIN hourly h ON h.device_id = g.device_id AND h.period_start = g.period_start
    LEFT JOIN winds w ON w.device_id = g.device_id AND w.period_start = g.period_start
    LEFT JOIN quarantined q ON q.device_id = g.device_id AND q.period_start = g.period_start
)
SELECT strftime(day, '%Y-%m-%d') AS date, hour::INTEGER AS hour, period_start,
       period_start + INTERVAL 1 HOUR AS period_end, device_id, district_code, district_ko, district_en,
       temperature, temperature_min, temperature_max, humidity, pressure, wind_speed, wind_speed_max,
       wind_dir, wind_dir_constancy, rain,
       -0.2442 + 0.55399 * wet_bulb + 0.45535 * temperature - 0.0022 * wet_bulb * wet_bulb
           + 0.00278 * wet_bulb * temperature + 3.0 AS heat_index,
       expected, observed, flagged, missing_source, missing_quarantined,
       greatest(coalesce(expected, 0) - observed - missing_source - missing_quarantined, 0) AS missing_offline
FROM series
