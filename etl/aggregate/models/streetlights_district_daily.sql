-- streetlights_district_daily: one row per district (구) and KST day, over the streetlights
-- installed there. 구별 보안등 전력량·고장. Sums and means of streetlights_daily's rows:
-- energy and outages add up; uptime is the mean of the lights' own uptime (lights that
-- reported none of their should-be-on time are left out of it).
-- Parameters: $read_dates (as streetlights_daily, whose rows it reads).
-- @column date: KST date (partition)
-- @column period_start: start of the KST day, UTC
-- @column period_end: end of the KST day, UTC
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column lights: streetlights installed in the district
-- @column lights_reporting: lights with at least one accepted reading this day
-- @column lights_with_outage: lights with at least one outage this day (streetlight_outages)
-- @column outages: outage rows of the district's lights this day
-- @column outage_minutes: their minutes
-- @column fault_reports: fault_code readings other than 0
-- @column energy_kwh: energy used by the district's lights, kWh (null when no light reported power)
-- @column uptime_mean: mean of the lights' uptime (share of reported should-be-on time on)
-- @column expected: readings expected in the day from the district's lights
-- @column observed: readings accepted in the day
-- @column flagged: accepted readings with a quality flag
-- @column missing_source: readings the source marked missing or invalid
-- @column missing_quarantined: readings quarantined for other reasons
-- @column missing_offline: expected readings that never arrived
-- @column completeness: observed / expected (null when nothing was expected)
SELECT date, min(period_start) AS period_start, max(period_end) AS period_end, district_code,
       any_value(district_ko) AS district_ko, any_value(district_en) AS district_en,
       count(*) AS lights, count(*) FILTER (observed > 0) AS lights_reporting,
       count(*) FILTER (outages > 0) AS lights_with_outage, sum(outages)::BIGINT AS outages,
       sum(outage_minutes) AS outage_minutes, sum(fault_reports)::BIGINT AS fault_reports,
       sum(energy_kwh) AS energy_kwh, avg(uptime) AS uptime_mean,
       sum(expected)::BIGINT AS expected, sum(observed)::BIGINT AS observed, sum(flagged)::BIGINT AS flagged,
       sum(missing_source)::BIGINT AS missing_source, sum(missing_quarantined)::BIGINT AS missing_quarantined,
       sum(missing_offline)::BIGINT AS missing_offline,
       sum(observed) / nullif(sum(expected), 0) AS completeness
FROM streetlights_daily
GROUP BY date, district_code
