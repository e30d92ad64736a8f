-- air_quality_station_daily: one row per air-quality device and KST day. 측정소별 일 대기질.
-- A daily mean needs 18 of the 24 hourly values (75 %, as AirKorea's daily statistics); the
-- CAI columns summarise the day's hourly indices (air_quality_station_hourly).
-- Parameters: $read_dates (as air_quality_station_hourly, whose rows it reads).
-- @column date: KST date (partition)
-- @column period_start: start of the KST day, UTC
-- @column period_end: end of the KST day, UTC
-- @column device_id: device (view devices)
-- @column kind: reference_station (AirKorea) or lowcost_pm
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column pm10: PM10 daily mean (18+ hourly values), µg/m³
-- @column pm25: PM2.5 daily mean (18+ hourly values), µg/m³
-- @column o3: ozone daily mean (18+ hourly values), ppm
-- @column no2: nitrogen dioxide daily mean (18+ hourly values), ppm
-- @column co: carbon monoxide daily mean (18+ hourly values), ppm
-- @column so2: sulphur dioxide daily mean (18+ hourly values), ppm
-- @column pm25_hours: hours with a PM2.5 value
-- @column o3_8h_max: highest 8-hour ozone mean of the day, ppm
-- @column cai_max: highest hourly CAI of the day
-- @column cai_grade_max: worst hourly CAI grade of the day (1-4)
-- @column cai_hours: hours with a CAI
-- @column hours_good: hours with CAI grade 1 (좋음)
-- @column hours_moderate: hours with CAI grade 2 (보통)
-- @column hours_bad: hours with CAI grade 3 (나쁨)
-- @column hours_very_bad: hours with CAI grade 4 (매우나쁨)
-- @column us_aqi_max: highest hourly US AQI of the day
-- @column expected: readings expected in the day
-- @column observed: readings accepted in the day
-- @column flagged: accepted readings with a quality flag
-- @column missing_source: readings the source marked missing or invalid
-- @column missing_quarantined: readings quarantined for other reasons
-- @column missing_offline: expected readings that never arrived
-- @column completeness: observed / expected (null when nothing was expected)
SELECT date, min(period_start) AS period_start, max(period_end) AS period_end, device_id,
       any_value(kind) AS kind, any_value(district_code) AS district_code, any_value(district_ko) AS district_ko,
       any_value(district_en) AS district_en,
       CASE WHEN count(pm10) >= 18 THEN avg(pm10) END AS pm10, CASE WHEN count(pm25) >= 18 THEN avg(pm25) END AS pm25,
       CASE WHEN count(o3) >= 18 THEN avg(o3) END AS o3, CASE WHEN count(no2) >= 18 THEN avg(no2) END AS no2,
       CASE WHEN count(co) >= 18 THEN avg(co) END AS co, CASE WHEN count(so2) >= 18 THEN avg(so2) END AS so2,
       count(pm25) AS pm25_hours, max(o3_8h) AS o3_8h_max,
       max(cai) AS cai_max, max(cai_grade) AS cai_grade_max, count(cai) AS cai_hours,
       count(*) FILTER (cai_grade = 1) AS hours_good, count(*) FILTER (cai_grade = 2) AS hours_moderate,
       count(*) FILTER (cai_grade = 3) AS hours_bad, count(*) FILTER (cai_grade = 4) AS hours_very_bad,
       max(us_aqi) AS us_aqi_max,
       sum(expected) AS expected, sum(observed) AS observed, sum(flagged) AS flagged,
       sum(missing_source) AS missing_source, sum(missing_quarantined) AS missing_quarantined,
       sum(missing_offline) AS missing_offline,
       sum(observed) / nullif(sum(expected), 0) AS completeness
FROM air_quality_station_hourly
GROUP BY date, device_id
