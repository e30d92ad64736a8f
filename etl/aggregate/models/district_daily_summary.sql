-- district_daily_summary: one row per district (구) and KST day, joining every domain's gold
-- tables of that day. 구별 일 종합 요약. Each column comes from the domain table named in its
-- comment; a domain with no data that day leaves its columns null. Daycare counts are the sum
-- of the facilities' published (not suppressed) counts, never a total that would reveal a
-- suppressed one, and carry the same publication delay.
-- Parameters: $dates (KST dates to rebuild).
-- @column date: KST date (partition)
-- @column period_start: start of the KST day, UTC
-- @column period_end: end of the KST day, UTC
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column cai_max: highest hourly CAI of the district (air_quality_district_daily)
-- @column cai_grade_max: worst hourly CAI grade, 1-4 (air_quality_district_daily)
-- @column cai_bad_hours: hours with CAI grade 3 나쁨 or 4 매우나쁨 (air_quality_district_daily)
-- @column pm25: PM2.5 daily mean of the reference stations, µg/m³ (air_quality_district_daily)
-- @column pm25_sensors: PM2.5 daily mean of the low-cost sensors, µg/m³ (air_quality_district_daily)
-- @column temperature: mean of the stations' daily mean temperatures, °C (weather_station_daily)
-- @column temperature_min: lowest temperature at any station, °C (weather_station_daily)
-- @column temperature_max: highest temperature at any station, °C (weather_station_daily)
-- @column rain: mean of the stations' daily rain sums, mm (weather_station_daily)
-- @column heat_index_max: highest heat index at any station (weather_station_daily)
-- @column water_exceedances: water-quality exceedance events (per probe, metric and day) (water_quality_exceedances)
-- @column bins: smart bins reporting (waste_bins_daily)
-- @column bin_overflow_hours: hours bins spent at or above the overflow level, summed (waste_bins_daily)
-- @column bin_collections: detected collections (waste_bins_daily)
-- @column bins_overflowing: bins at or above the overflow level at the end of the day (waste_bins_to_empty)
-- @column parking_occupancy: mean hourly occupancy rate of the district's lots, 0-1 (parking_lot_hourly)
-- @column parking_occupancy_peak: highest hourly occupancy rate of any lot, 0-1 (parking_lot_hourly)
-- @column lights: streetlights (streetlights_district_daily)
-- @column lights_with_outage: streetlights with an outage (streetlights_district_daily)
-- @column light_outages: outage events (streetlights_district_daily)
-- @column lights_energy_kwh: energy the streetlights used, kWh (streetlights_district_daily)
-- @column daycare_facilities: daycare facilities with a row that day (daycare_daily)
-- @column daycare_arrivals: arrivals summed over the facilities whose count is published (daycare_daily)
-- @column daycare_suppressed: facilities whose counts are suppressed (below k) (daycare_daily)
-- @column daycare_publishable_from: first date the daycare columns may be published (daycare_daily)
-- @column expected: readings expected that day from the district's devices, all domains with an interval
-- @column observed: readings accepted
-- @column missing_source: readings the source marked missing or invalid
-- @column missing_quarantined: readings quarantined for other reasons
-- @column missing_offline: expected readings that never arrived
-- @column completeness: observed / expected
WITH days AS (SELECT CAST(unnest($dates) AS DATE) AS day),
districts AS (
    SELECT DISTINCT district_code, district_ko, district_en FROM devices
),
grid AS (
    SELECT strftime(day, '%Y-%m-%d') AS date, day::TIMESTAMP AT TIME ZONE 'Asia/Seoul' AS period_start,
           (day + 1)::TIMESTAMP AT TIME ZONE 'Asia/Seoul' AS period_end, d.*
    FROM days, districts d
),
air AS (
    SELECT date, district_code, cai_max, cai_grade_max, hours_bad + hours_very_bad AS cai_bad_hours, pm25,
           pm25_sensors, expected, observed, missing_source, missing_quarantined, missing_offline
    FROM air_quality_district_daily WHERE date IN (SELECT unnest($dates))
),
weather AS (
    SELECT date, district_code, avg(temperature) AS temperature, min(temperature_min) AS temperature_min,
           max(temperature_max) AS temperature_max, avg(rain) AS rain, max(heat_index_max) AS heat_index_max,
           sum(expected) AS expected, sum(observed) AS observed, sum(missing_source) AS missing_source,
           sum(missing_quarantined) AS missing_quarantined, sum(missing_offline) AS missing_offline
    FROM weather_station_daily WHERE date IN (SELECT unnest($dates)) GROUP BY ALL
),
water AS (
    SELECT date, district_code, count(*) AS water_exceedances
    FROM water_quality_exceedances WHERE date IN (SELECT unnest($dates)) GROUP BY ALL
),
water_readings AS (
    SELECT date, district_code, sum(expected) AS expected, sum(observed) AS observed,
           sum(missing_source) AS missing_source, sum(missing_quarantined) AS missing_quarantined,
           sum(missing_offline) AS missing_offline
    FROM water_quality_hourly WHERE date IN (SELECT unnest($dates)) GROUP BY ALL
),
bins AS (
    SELECT date, district_code, count(*) FILTER (observed > 0) AS bins, sum(overflow_hours) AS bin_overflow_hours,
           sum(collections) AS bin_collections, sum(expected) AS expected, sum(observed) AS observed,
           sum(missing_source) AS missing_source, sum(missing_quarantined) AS missing_quarantined,
           sum(missing_offline) AS missing_offline
    FROM waste_bins_daily WHERE date IN (SELECT unnest($dates)) GROUP BY ALL
),
bins_end AS (
    SELECT date, district_code, count(*) FILTER (overflowing) AS bins_overflowing
    FROM waste_bins_to_empty WHERE date IN (SELECT unnest($dates)) GROUP BY ALL
),
parking AS (
    SELECT date, district_code, avg(occupancy_rate) AS parking_occupancy, max(occupancy_rate) AS parking_occupancy_peak,
           sum(expected) AS expected, sum(observed) AS observed, sum(missing_source) AS missing_source,
           sum(missing_quarantined) AS missing_quarantined, sum(missing_offline) AS missing_offline
    FROM parking_lot_hourly WHERE date IN (SELECT unnest($dates)) GROUP BY ALL
),
lights AS (
    SELECT date, district_code, lights, lights_with_outage, outages AS light_outages, energy_kwh AS lights_energy_kwh,
           expected, observed, missing_source, missing_quarantined, missing_offline
    FROM streetlights_district_daily WHERE date IN (SELECT unnest($dates))
),
daycare AS (
    SELECT date, district_code, count(*) AS daycare_facilities, sum(arrivals) AS daycare_arrivals,
           count(*) FILTER (suppressed) AS daycare_suppressed, max(publishable_from) AS daycare_publishable_from
    FROM daycare_daily WHERE date IN (SELECT unnest($dates)) GROUP BY ALL
),
readings AS (
    SELECT date, district_code, sum(expected) AS expected, sum(observed) AS observed,
           sum(missing_source) AS missing_source, sum(missing_quarantined) AS missing_quarantined,
           sum(missing_offline) AS missing_offline
    FROM (SELECT date, district_code, expected, observed, missing_source, missing_quarantined, missing_offline FROM air
          UNION ALL SELECT date, district_code, expected, observed, missing_source, missing_quarantined, missing_offline FROM weather
          UNION ALL SELECT * FROM water_readings
          UNION ALL SELECT date, district_code, expected, observed, missing_source, missing_quarantined, missing_offline FROM bins
          UNION ALL SELECT date, district_code, expected, observed, missing_source, missing_quarantined, missing_offline FROM parking
          UNION ALL SELECT date, district_code, expected, observed, missing_source, missing_quarantined, missing_offline FROM lights)
    GROUP BY ALL
)
SELECT g.date, g.period_start, g.period_end, g.district_code, g.district_ko, g.district_en,
       a.cai_max, a.cai_grade_max, a.cai_bad_hours, a.pm25, a.pm25_sensors,
       w.temperature, w.temperature_min, w.temperature_max, w.rain, w.heat_index_max,
       coalesce(x.water_exceedances, 0) AS water_exceedances,
       b.bins, b.bin_overflow_hours, b.bin_collections, e.bins_overflowing,
       p.parking_occupancy, p.parking_occupancy_peak,
       l.lights, l.lights_with_outage, l.light_outages, l.lights_energy_kwh,
       d.daycare_facilities, d.daycare_arrivals, d.daycare_suppressed, d.daycare_publishable_from,
       r.expected, r.observed, r.missing_source, r.missing_quarantined, r.missing_offline,
       r.observed / nullif(r.expected, 0) AS completeness
FROM grid g
LEFT JOIN air a USING (date, district_code)
LEFT JOIN weather w USING (date, district_code)
LEFT JOIN water x USING (date, district_code)
LEFT JOIN bins b USING (date, district_code)
LEFT JOIN bins_end e USING (date, district_code)
LEFT JOIN parking p USING (date, district_code)
LEFT JOIN lights l USING (date, district_code)
LEFT JOIN daycare d USING (date, district_code)
LEFT JOIN readings r USING (date, district_code)
