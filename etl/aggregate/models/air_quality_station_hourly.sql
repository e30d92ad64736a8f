-- air_quality_station_hourly: one row per air-quality device (AirKorea reference station or
-- low-cost PM sensor) and hour, with Korean CAI and US AQI. 측정소별 시간 대기질.
-- Hour-beginning: the hour [period_start, period_end); AirKorea's dataTime of the same hour is
-- its end (dataTime "24:00" = hour 23). Concentrations are means of the hour's accepted readings
-- (flagged ones included, counted in `flagged`). CAI: gases on the hour's value, PM on AirKorea's
-- 24-hour predicted concentration; none when PM10, PM2.5, O3 or NO2 is missing (low-cost sensors
-- measure only PM, so they never get one). US AQI: PM on the NowCast, O3 the higher of its
-- 8-hour mean and hourly value, CO on its 8-hour mean, SO2/NO2 hourly (docs/INDICES.md).
-- Parameters: $read_dates (KST dates: the dates to rebuild and the day before them).
-- @column date: KST date of period_start (partition)
-- @column hour: KST hour of period_start, 0-23
-- @column period_start: start of the hour, UTC
-- @column period_end: end of the hour, UTC (AirKorea's dataTime)
-- @column device_id: device (view devices)
-- @column kind: reference_station (AirKorea) or lowcost_pm
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column pm10: PM10 hourly mean, µg/m³
-- @column pm25: PM2.5 hourly mean, µg/m³
-- @column o3: ozone hourly mean, ppm
-- @column no2: nitrogen dioxide hourly mean, ppm
-- @column co: carbon monoxide hourly mean, ppm
-- @column so2: sulphur dioxide hourly mean, ppm
-- @column pm10_24h: AirKorea's 24-hour predicted PM10 concentration (24시간 예측이동농도), µg/m³
-- @column pm25_24h: AirKorea's 24-hour predicted PM2.5 concentration, µg/m³
-- @column cai_pm10: CAI sub-index of PM10 (on pm10_24h)
-- @column cai_pm25: CAI sub-index of PM2.5 (on pm25_24h)
-- @column cai_o3: CAI sub-index of O3
-- @column cai_no2: CAI sub-index of NO2
-- @column cai_co: CAI sub-index of CO
-- @column cai_so2: CAI sub-index of SO2
-- @column cai: Korean integrated air quality index (통합대기환경지수), 0-500; null when a required pollutant is missing
-- @column cai_grade: CAI grade 1-4 (1 좋음 good, 2 보통 moderate, 3 나쁨 bad, 4 매우나쁨 very bad)
-- @column cai_grade_ko: CAI grade name, Korean
-- @column cai_grade_en: CAI grade name, English
-- @column cai_main: pollutant with the highest CAI sub-index
-- @column cai_version: breakpoint table version of the CAI
-- @column pm25_nowcast: PM2.5 NowCast (US EPA), µg/m³
-- @column pm10_nowcast: PM10 NowCast (US EPA), µg/m³
-- @column o3_8h: ozone trailing 8-hour mean (6 of 8 hours needed), ppm
-- @column co_8h: carbon monoxide trailing 8-hour mean (6 of 8 hours needed), ppm
-- @column aqi_pm25: US AQI sub-index of PM2.5
-- @column aqi_pm10: US AQI sub-index of PM10
-- @column aqi_o3: US AQI sub-index of O3
-- @column aqi_no2: US AQI sub-index of NO2
-- @column aqi_co: US AQI sub-index of CO
-- @column aqi_so2: US AQI sub-index of SO2
-- @column us_aqi: US AQI (EPA, 2024 PM2.5 breakpoints), the highest sub-index
-- @column aqi_category: US AQI category 1-6 (good ... hazardous)
-- @column aqi_category_en: US AQI category name, English
-- @column aqi_main: pollutant with the highest US AQI sub-index
-- @column aqi_version: breakpoint table version of the US AQI
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
    SELECT v.device_id, v.kind, v.district_code, v.district_ko, v.district_en,
           len(string_split(v.metrics, ' ')) * 3600 // nullif(v.interval_s, 0) AS expected,
           h.day, h.hour, h.period_start
    FROM devices v JOIN hours h ON v.install_date <= h.day
    WHERE v.domain = 'air_quality'
),
hourly AS (
    SELECT device_id, date_trunc('hour', ts) AS period_start,
           avg(value) FILTER (metric = 'pm10') AS pm10, avg(value) FILTER (metric = 'pm25') AS pm25,
           avg(value) FILTER (metric = 'o3') AS o3, avg(value) FILTER (metric = 'no2') AS no2,
           avg(value) FILTER (metric = 'co') AS co, avg(value) FILTER (metric = 'so2') AS so2,
           count(*) AS observed, count(quality_flag) AS flagged
    FROM silver WHERE domain = 'air_quality' AND date IN (SELECT unnest($read_dates))
    GROUP BY ALL
),
quarantined AS (
    SELECT device_id, date_trunc('hour', ts) AS period_start,
           count(*) FILTER (source_marked(reason)) AS missing_source,
           count(*) FILTER (NOT source_marked(reason)) AS missing_quarantined
    FROM quarantine
    WHERE date IN (SELECT unnest($read_dates)) AND domain = 'air_quality' AND device_id IS NOT NULL AND ts IS NOT NULL
    GROUP BY ALL
),
series AS (
    SELECT g.*, h.pm10, h.pm25, h.o3, h.no2, h.co, h.so2,
           coalesce(h.observed, 0) AS observed, coalesce(h.flagged, 0) AS flagged,
           coalesce(q.missing_source, 0) AS missing_source, coalesce(q.missing_quarantined, 0) AS missing_quarantined,
           list(h.pm10) OVER w12 AS pm10_12, list(h.pm25) OVER w12 AS pm25_12,
           list(h.o3) OVER w8 AS o3_8, list(h.co) OVER w8 AS co_8
    FROM grid g
    LEFT JOIN hourly h ON h.device_id = g.device_id AND h.period_start = g.period_start
    LEFT JOIN quarantined q ON q.device_id = g.device_id AND q.period_start = g.period_start
    WINDOW w12 AS (PARTITION BY g.device_id ORDER BY g.period_start ROWS BETWEEN 11 PRECEDING AND CURRENT ROW),
           w8 AS (PARTITION BY g.device_id ORDER BY g.period_start ROWS BETWEEN 7 PRECEDING AND CURRENT ROW)
),
concentrations AS (
    SELECT *, pm_predicted_24h(pm10_12, 'pm10') AS pm10_24h, pm_predicted_24h(pm25_12, 'pm25') AS pm25_24h,
           nowcast(pm25_12) AS pm25_nowcast, nowcast(pm10_12) AS pm10_nowcast,
           trailing_mean(o3_8, 8, 6) AS o3_8h, trailing_mean(co_8, 8, 6) AS co_8h
    FROM series
),
subs AS (
    SELECT *,
           cai_sub('pm10', pm10_24h) AS cai_pm10, cai_sub('pm25', pm25_24h) AS cai_pm25, cai_sub('o3', o3) AS cai_o3,
           cai_sub('no2', no2) AS cai_no2, cai_sub('co', co) AS cai_co, cai_sub('so2', so2) AS cai_so2,
           aqi_sub('pm25', pm25_nowcast) AS aqi_pm25, aqi_sub('pm10', pm10_nowcast) AS aqi_pm10,
           aqi_o3(o3_8h, o3) AS aqi_o3, aqi_sub('no2', no2) AS aqi_no2, aqi_sub('co', co_8h) AS aqi_co,
           aqi_sub('so2', so2) AS aqi_so2
    FROM concentrations
),
indexed AS (
    SELECT *, cai_combine(cai_pm25, cai_pm10, cai_o3, cai_no2, cai_co, cai_so2) AS cai,
           cai_main(cai_pm25, cai_pm10, cai_o3, cai_no2, cai_co, cai_so2) AS cai_main,
           us_aqi_combine(aqi_pm25, aqi_pm10, aqi_o3, aqi_no2, aqi_co, aqi_so2) AS us_aqi,
           aqi_main(aqi_pm25, aqi_pm10, aqi_o3, aqi_no2, aqi_co, aqi_so2) AS aqi_main
    FROM subs
)
SELECT strftime(i.day, '%Y-%m-%d') AS date, i.hour::INTEGER AS hour, i.period_start,
       i.period_start + INTERVAL 1 HOUR AS period_end, i.device_id, i.kind, i.district_code, i.district_ko,
       i.district_en, i.pm10, i.pm25, i.o3, i.no2, i.co, i.so2, i.pm10_24h, i.pm25_24h,
       i.cai_pm10, i.cai_pm25, i.cai_o3, i.cai_no2, i.cai_co, i.cai_so2, i.cai, g.grade AS cai_grade,
       g.name_ko AS cai_grade_ko, g.name_en AS cai_grade_en, i.cai_main, cai_version() AS cai_version,
       i.pm25_nowcast, i.pm10_nowcast, i.o3_8h, i.co_8h,
       i.aqi_pm25, i.aqi_pm10, i.aqi_o3, i.aqi_no2, i.aqi_co, i.aqi_so2, i.us_aqi, a.grade AS aqi_category,
       a.name_en AS aqi_category_en, i.aqi_main, aqi_version() AS aqi_version,
       i.expected, i.observed, i.flagged, i.missing_source, i.missing_quarantined,
       greatest(coalesce(i.expected, 0) - i.observed - i.missing_source - i.missing_quarantined, 0) AS missing_offline
FROM indexed i
LEFT JOIN cai_grades g ON i.cai BETWEEN g.lo_index AND g.hi_index
LEFT JOIN aqi_categories a ON i.us_aqi BETWEEN a.lo_index AND a.hi_index
