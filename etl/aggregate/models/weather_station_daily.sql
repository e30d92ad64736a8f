-- weather_station_daily: one row per living-weather station and KST day. 관측소별 일 기상.
-- From weather_station_hourly. A daily mean needs 18 of the 24 hourly values (75 %, as the air-quality
-- daily means); extremes and the rain total are over the hours there are, and `completeness` says how
-- much of the day that was.
-- Parameters: $read_dates (as weather_station_hourly, whose rows it reads).
-- @column date: KST date (partition)
-- @column period_start: start of the KST day, UTC
-- @column period_end: end of the KST day, UTC
-- @column device_id: weather station (view devices)
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column temperature: air temperature, daily mean of the hourly means (18+ hourly values), °C
-- @column temperature_min: lowest air temperature reading of the day, °C
-- @column temperature_max: highest air temperature reading of the day, °C
-- @column temperature_hours: hours with a temperature value
-- @column humidity: relative humidity, daily mean of the hourly means (18+ hourly values), %
-- @column rain: rainfall of the day, sum of the hourly sums, mm (a lower bound when hours are missing)
-- @column rain_hours: hours with rain (hourly sum above 0 mm)
-- @column wind_speed_max: highest wind speed reading of the day, m/s
-- @column heat_index_max: highest hourly KMA summer apparent temperature (여름철 체감온도) of the day, °C; May-September only
-- @column expected: readings expected in the day
-- @column observed: readings accepted in the day
-- @column flagged: accepted readings with a quality flag
-- @column missing_source: readings the source marked missing or invalid
-- @column missing_quarantined: readings quarantined for other reasons
-- @column missing_offline: expected readings that never arrived
-- @column completeness: observed / expected (null when nothing was expected)
SELECT date, min(period_start) AS period_start, max(period_end) AS period_end, device_id,
       any_value(district_code) AS district_code, any_value(district_ko) AS district_ko,
       any_value(district_en) AS district_en,
       CASE WHEN count(temperature) >= 18 THEN avg(temperature) END AS temperature,
       min(temperature_min) AS temperature_min, max(temperature_max) AS temperature_max,
       count(temperature) AS temperature_hours,
       CASE WHEN count(humidity) >= 18 THEN avg(humidity) END AS humidity,
       sum(rain) AS rain, count(*) FILTER (rain > 0) AS rain_hours,
       max(wind_speed_max) AS wind_speed_max, max(heat_index) AS heat_index_max,
       sum(expected)::BIGINT AS expected, sum(observed)::BIGINT AS observed, sum(flagged)::BIGINT AS flagged,
       sum(missing_source)::BIGINT AS missing_source, sum(missing_quarantined)::BIGINT AS missing_quarantined,
       sum(missing_offline)::BIGINT AS missing_offline,
       sum(observed) / nullif(sum(expected), 0) AS completeness
FROM weather_station_hourly
GROUP BY date, device_id
