-- waste_bins_to_empty: one row per smart bin and KST day, ranking the bins of each district by
-- which to empty first, as of the end of that day (or of the day's last reading, while the day
-- is still arriving). 구별 수거 우선순위. The fill rate is the least-squares slope of the fill
-- level over the day's readings since the bin's last collection that day (waste_bins_collections;
-- the collection's own reading included), or over all the day's readings when it was not
-- collected; it needs two readings. The hours to overflow run from the last reading to the
-- moment the fill level reaches gold_bin_overflow_pct at that rate: 0 for a bin already there,
-- null when the level is not rising. Rank 1 is the bin to empty first: fewest hours to
-- overflow, then the fuller bin, then device_id; bins without hours to overflow (one reading,
-- or not rising) rank after the others, and a bin without a reading that day is listed unranked.
-- Parameters: $read_dates (as waste_bins_collections, whose rows it reads), $gold_bin_overflow_pct.
-- @column date: KST date the ranking is as of (partition)
-- @column period_start: start of the KST day, UTC
-- @column period_end: end of the KST day, UTC
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column rank: order of emptying within the district that day, 1 = empty first (null: no reading that day)
-- @column device_id: smart bin (view devices)
-- @column dong_code: administrative dong (동) code
-- @column dong_ko: dong name, Korean
-- @column dong_en: dong name, English
-- @column lat: latitude of the bin (WGS84)
-- @column lon: longitude of the bin (WGS84)
-- @column fill_level: fill level of the day's last reading, %
-- @column last_reading_at: time of the day's last fill-level reading, UTC
-- @column overflowing: fill_level is at or above the overflow threshold (gold_bin_overflow_pct)
-- @column last_collection_at: time of the day's last detected collection, UTC (null: not collected that day)
-- @column rate_since: time of the first reading the fill rate is computed over, UTC
-- @column rate_readings: fill-level readings the fill rate is computed over
-- @column fill_rate: fill-level increase, percentage points per hour (least-squares slope; null with fewer than 2 readings)
-- @column hours_to_overflow: hours from last_reading_at until the overflow threshold at fill_rate (0: already there; null: not rising)
-- @column overflow_eta: last_reading_at + hours_to_overflow, UTC
WITH bins AS (
    SELECT v.device_id, v.district_code, v.district_ko, v.district_en, v.dong_code, v.dong_ko, v.dong_en,
           v.lat, v.lon, d.day, strftime(d.day, '%Y-%m-%d') AS date,
           d.day::TIMESTAMP AT TIME ZONE 'Asia/Seoul' AS period_start
    FROM devices v JOIN (SELECT CAST(unnest($read_dates) AS DATE) AS day) d ON v.install_date <= d.day
    WHERE v.domain = 'waste_bins' AND v.kind = 'smart_bin'
),
collected AS (
    SELECT date, device_id, max(period_end) AS last_collection_at FROM waste_bins_collections GROUP BY ALL
),
since AS (                         -- the day's readings since its last collection, or all of them
    SELECT s.device_id, s.date, s.ts, s.value, c.last_collection_at,
           epoch(s.ts AT TIME ZONE 'Asia/Seoul' - CAST(s.date AS TIMESTAMP)) / 3600.0 AS hours_into_day
    FROM silver s
    LEFT JOIN collected c ON c.device_id = s.device_id AND c.date = s.date
    WHERE s.domain = 'waste_bins' AND s.metric = 'fill_level' AND s.date IN (SELECT unnest($read_dates))
      AND (c.last_collection_at IS NULL OR s.ts >= c.last_collection_at)
),
rates AS (
    SELECT device_id, date, arg_max(value, ts) AS fill_level, max(ts) AS last_reading_at,
           any_value(last_collection_at) AS last_collection_at, min(ts) AS rate_since, count(*) AS rate_readings,
           CASE WHEN count(*) >= 2 THEN regr_slope(value, hours_into_day) END AS fill_rate
    FROM since GROUP BY ALL
),
estimated AS (
    SELECT b.*, r.fill_level, r.last_reading_at, r.fill_level >= $gold_bin_overflow_pct AS overflowing,
           r.last_collection_at, r.rate_since, r.rate_readings, r.fill_rate,
           CASE WHEN r.fill_level >= $gold_bin_overflow_pct THEN 0.0
                WHEN r.fill_rate > 0 THEN ($gold_bin_overflow_pct - r.fill_level) / r.fill_rate END AS hours_to_overflow
    FROM bins b LEFT JOIN rates r ON r.device_id = b.device_id AND r.date = b.date
)
SELECT date, period_start, period_start + INTERVAL 1 DAY AS period_end, district_code, district_ko, district_en,
       CASE WHEN fill_level IS NOT NULL THEN row_number() OVER (
           PARTITION BY date, district_code
           ORDER BY fill_level IS NULL, hours_to_overflow ASC NULLS LAST, fill_level DESC, device_id) END AS rank,
       device_id, dong_code, dong_ko, dong_en, lat, lon, fill_level, last_reading_at, overflowing,
       last_collection_at, rate_since, rate_readings, fill_rate, hours_to_overflow,
       last_reading_at + to_seconds(hours_to_overflow * 3600) AS overflow_eta
FROM estimated
