-- air_quality_district_hourly: one row per district (구) and hour, with Korean CAI and US AQI.
-- 구별 시간 대기질. The official concentrations are the means of the district's AirKorea
-- reference stations (as AirKorea reports a city: low-cost sensors do not enter the index);
-- the low-cost sensors' PM means are given beside them. The indices are computed from the
-- district's hourly series exactly as for a station (air_quality_station_hourly).
-- Parameters: $read_dates (as air_quality_station_hourly, whose rows of those dates it reads).
-- @column date: KST date of period_start (partition)
-- @column hour: KST hour of period_start, 0-23
-- @column period_start: start of the hour, UTC
-- @column period_end: end of the hour, UTC
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column stations: reference stations installed in the district
-- @column stations_reporting: reference stations with at least one pollutant this hour
-- @column sensors_reporting: low-cost PM sensors with a PM2.5 value this hour
-- @column pm10: PM10, mean of the reference stations, µg/m³
-- @column pm25: PM2.5, mean of the reference stations, µg/m³
-- @column o3: ozone, mean of the reference stations, ppm
-- @column no2: nitrogen dioxide, mean of the reference stations, ppm
-- @column co: carbon monoxide, mean of the reference stations, ppm
-- @column so2: sulphur dioxide, mean of the reference stations, ppm
-- @column pm10_sensors: PM10, mean of the low-cost sensors, µg/m³
-- @column pm25_sensors: PM2.5, mean of the low-cost sensors, µg/m³
-- @column pm10_24h: AirKorea's 24-hour predicted PM10 concentration of the district series, µg/m³
-- @column pm25_24h: AirKorea's 24-hour predicted PM2.5 concentration of the district series, µg/m³
-- @column cai: Korean integrated air quality index (통합대기환경지수), 0-500; null when a required pollutant is missing
-- @column cai_grade: CAI grade 1-4 (1 좋음 good, 2 보통 moderate, 3 나쁨 bad, 4 매우나쁨 very bad)
-- @column cai_grade_ko: CAI grade name, Korean
-- @column cai_grade_en: CAI grade name, English
-- @column cai_main: pollutant with the highest CAI sub-index
-- @column cai_worst_station: highest station CAI in the district this hour
-- @column cai_version: breakpoint table version of the CAI
-- @column us_aqi: US AQI (EPA, 2024 PM2.5 breakpoints)
-- @column aqi_category: US AQI category 1-6
-- @column aqi_category_en: US AQI category name, English
-- @column aqi_main: pollutant with the highest US AQI sub-index
-- @column aqi_version: breakpoint table version of the US AQI
-- @column expected: readings expected in the hour from all the district's air-quality devices
-- @column observed: readings accepted in the hour
-- @column flagged: accepted readings with a quality flag
-- @column missing_source: readings the source marked missing or invalid
-- @column missing_quarantined: readings quarantined for other reasons
-- @column missing_offline: expected readings that never arrived
WITH districts AS (
    SELECT day, hour, period_start, district_code, any_value(district_ko) AS district_ko,
           any_value(district_en) AS district_en,
           count(*) FILTER (kind = 'reference_station') AS stations,
           count(*) FILTER (kind = 'reference_station' AND coalesce(pm10, pm25, o3, no2, co, so2) IS NOT NULL)
               AS stations_reporting,
           count(pm25) FILTER (kind = 'lowcost_pm') AS sensors_reporting,
           avg(pm10) FILTER (kind = 'reference_station') AS pm10, avg(pm25) FILTER (kind = 'reference_station') AS pm25,
           avg(o3) FILTER (kind = 'reference_station') AS o3, avg(no2) FILTER (kind = 'reference_station') AS no2,
           avg(co) FILTER (kind = 'reference_station') AS co, avg(so2) FILTER (kind = 'reference_station') AS so2,
           avg(pm10) FILTER (kind = 'lowcost_pm') AS pm10_sensors, avg(pm25) FILTER (kind = 'lowcost_pm') AS pm25_sensors,
           max(cai) AS cai_worst_station,
           sum(expected) AS expected, sum(observed) AS observed, sum(flagged) AS flagged,
           sum(missing_source) AS missing_source, sum(missing_quarantined) AS missing_quarantined,
           sum(missing_offline) AS missing_offline
    FROM (SELECT *, CAST(date AS DATE) AS day FROM air_quality_station_hourly)
    GROUP BY day, hour, period_start, district_code
),
series AS (
    SELECT *, list(pm10) OVER w12 AS pm10_12, list(pm25) OVER w12 AS pm25_12,
           list(o3) OVER w8 AS o3_8, list(co) OVER w8 AS co_8
    FROM districts
    WINDOW w12 AS (PARTITION BY district_code ORDER BY period_start ROWS BETWEEN 11 PRECEDING AND CURRENT ROW),
           w8 AS (PARTITION BY district_code ORDER BY period_start ROWS BETWEEN 7 PRECEDING AND CURRENT ROW)
),
subs AS (
    SELECT *, pm_predicted_24h(pm10_12, 'pm10') AS pm10_24h, pm_predicted_24h(pm25_12, 'pm25') AS pm25_24h,
           cai_sub('o3', o3) AS cai_o3, cai_sub('no2', no2) AS cai_no2, cai_sub('co', co) AS cai_co,
           cai_sub('so2', so2) AS cai_so2,
           aqi_sub('pm25', nowcast(pm25_12)) AS aqi_pm25, aqi_sub('pm10', nowcast(pm10_12)) AS aqi_pm10,
           aqi_o3(trailing_mean(o3_8, 8, 6), o3) AS aqi_o3, aqi_sub('no2', no2) AS aqi_no2,
           aqi_sub('co', trailing_mean(co_8, 8, 6)) AS aqi_co, aqi_sub('so2', so2) AS aqi_so2
    FROM series
),
indexed AS (
    SELECT *, cai_combine(cai_pm25, cai_pm10, cai_o3, cai_no2, cai_co, cai_so2) AS cai,
           cai_main(cai_pm25, cai_pm10, cai_o3, cai_no2, cai_co, cai_so2) AS cai_main,
           us_aqi_combine(aqi_pm25, aqi_pm10, aqi_o3, aqi_no2, aqi_co, aqi_so2) AS us_aqi,
           aqi_main(aqi_pm25, aqi_pm10, aqi_o3, aqi_no2, aqi_co, aqi_so2) AS aqi_main
    FROM (SELECT *, cai_sub('pm10', pm10_24h) AS cai_pm10, cai_sub('pm25', pm25_24h) AS cai_pm25 FROM subs)
)
SELECT strftime(i.day, '%Y-%m-%d') AS date, i.hour, i.period_start, i.period_start + INTERVAL 1 HOUR AS period_end,
       i.district_code, i.district_ko, i.district_en, i.stations, i.stations_reporting, i.sensors_reporting,
       i.pm10, i.pm25, i.o3, i.no2, i.co, i.so2, i.pm10_sensors, i.pm25_sensors, i.pm10_24h, i.pm25_24h,
       i.cai, g.grade AS cai_grade, g.name_ko AS cai_grade_ko, g.name_en AS cai_grade_en, i.cai_main,
       i.cai_worst_station, cai_version() AS cai_version,
       i.us_aqi, a.grade AS aqi_category, a.name_en AS aqi_category_en, i.aqi_main, aqi_version() AS aqi_version,
       i.expected, i.observed, i.flagged, i.missing_source, i.missing_quarantined, i.missing_offline
FROM indexed i
LEFT JOIN cai_grades g ON i.cai BETWEEN g.lo_index AND g.hi_index
LEFT JOIN aqi_categories a ON i.us_aqi BETWEEN a.lo_index AND a.hi_index
