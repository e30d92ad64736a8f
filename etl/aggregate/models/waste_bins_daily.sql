-- waste_bins_daily: one row per smart bin and KST day. 쓰레기통별 일 요약.
-- From waste_bins_hourly and waste_bins_collections: an overflow hour is an hour whose highest
-- fill level is at or above gold_bin_overflow_pct; collections are the events detected that day.
-- Parameters: $read_dates (as waste_bins_hourly, whose rows it reads), $gold_bin_overflow_pct.
-- @column date: KST date (partition)
-- @column period_start: start of the KST day, UTC
-- @column period_end: end of the KST day, UTC
-- @column device_id: smart bin (view devices)
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column dong_code: administrative dong (동) code
-- @column dong_ko: dong name, Korean
-- @column dong_en: dong name, English
-- @column overflow_hours: hours whose highest fill level is at or above the overflow threshold (gold_bin_overflow_pct)
-- @column collections: collections detected that day (waste_bins_collections)
-- @column fill_level_max: highest fill level of the day, %
-- @column fill_level_last: fill level of the day's last reading, %
-- @column battery_min: lowest battery level of the day, %
-- @column tilted_hours: hours with a tilted reading
-- @column expected: readings expected in the day
-- @column observed: readings accepted in the day
-- @column flagged: accepted readings with a quality flag
-- @column missing_source: readings the source marked missing or invalid
-- @column missing_quarantined: readings quarantined for other reasons
-- @column missing_offline: expected readings that never arrived
-- @column completeness: observed / expected (null when nothing was expected)
WITH collected AS (
    SELECT date, device_id, count(*) AS collections FROM waste_bins_collections GROUP BY ALL
),
daily AS (
    SELECT date, min(period_start) AS period_start, max(period_end) AS period_end, device_id,
           any_value(district_code) AS district_code, any_value(district_ko) AS district_ko,
           any_value(district_en) AS district_en, any_value(dong_code) AS dong_code,
           any_value(dong_ko) AS dong_ko, any_value(dong_en) AS dong_en,
           count(*) FILTER (fill_level_max >= $gold_bin_overflow_pct) AS overflow_hours,
           max(fill_level_max) AS fill_level_max,
           arg_max(fill_level_last, period_start) FILTER (fill_level_last IS NOT NULL) AS fill_level_last,
           min(battery_min) AS battery_min, count(*) FILTER (tilted) AS tilted_hours,
           sum(expected)::BIGINT AS expected, sum(observed)::BIGINT AS observed, sum(flagged)::BIGINT AS flagged,
           sum(missing_source)::BIGINT AS missing_source, sum(missing_quarantined)::BIGINT AS missing_quarantined,
           sum(missing_offline)::BIGINT AS missing_offline,
           sum(observed) / nullif(sum(expected), 0) AS completeness
    FROM waste_bins_hourly
    GROUP BY date, device_id
)
SELECT d.date, d.period_start, d.period_end, d.device_id, d.district_code, d.district_ko, d.district_en,
       d.dong_code, d.dong_ko, d.dong_en, d.overflow_hours, coalesce(c.collections, 0) AS collections,
       d.fill_level_max, d.fill_level_last, d.battery_min, d.tilted_hours,
       d.expected, d.observed, d.flagged, d.missing_source, d.missing_quarantined, d.missing_offline,
       d.completeness
FROM daily d
LEFT JOIN collected c ON c.date = d.date AND c.device_id = d.device_id
