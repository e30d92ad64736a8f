-- waste_bins_collections: one row per detected collection (emptying) of a smart bin. 수거 감지 사례.
-- A collection is a fill-level drop of at least gold_bin_collection_drop_pct points
-- (etl/config/citylake.yaml) between two consecutive fill-level readings of a bin; the event is
-- the reading after the drop (its ts and KST date). The first reading of a day is compared with
-- the last one of the day before (the lookback), so an emptying just after midnight is found.
-- Gaps between the two readings are not limited: `hours_between` tells how long the bin went unseen.
-- Parameters: $read_dates (the dates to rebuild and the day before them), $gold_bin_collection_drop_pct.
-- @column date: KST date of period_end (partition)
-- @column hour: KST hour of period_end, 0-23
-- @column period_start: the reading before the drop (the collection happened after it), UTC
-- @column period_end: the first reading after the drop (the collection happened before it), UTC
-- @column hours_between: hours between the two readings
-- @column device_id: smart bin (view devices)
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column dong_code: administrative dong (동) code
-- @column dong_ko: dong name, Korean
-- @column dong_en: dong name, English
-- @column fill_before: fill level of the reading before the drop, %
-- @column fill_after: fill level of the reading after the drop, %
-- @column drop_pct: fill_before - fill_after, percentage points
WITH readings AS (
    SELECT device_id, ts, value,
           lag(value) OVER w AS fill_before, lag(ts) OVER w AS ts_before
    FROM silver
    WHERE domain = 'waste_bins' AND metric = 'fill_level' AND date IN (SELECT unnest($read_dates))
    WINDOW w AS (PARTITION BY device_id ORDER BY ts)
)
SELECT strftime(r.ts AT TIME ZONE 'Asia/Seoul', '%Y-%m-%d') AS date,
       hour(r.ts AT TIME ZONE 'Asia/Seoul')::INTEGER AS hour, r.ts_before AS period_start, r.ts AS period_end,
       (epoch(r.ts) - epoch(r.ts_before)) / 3600.0 AS hours_between, r.device_id,
       v.district_code, v.district_ko, v.district_en, v.dong_code, v.dong_ko, v.dong_en,
       r.fill_before, r.value AS fill_after, r.fill_before - r.value AS drop_pct
FROM readings r
JOIN devices v ON v.device_id = r.device_id
WHERE r.fill_before - r.value >= $gold_bin_collection_drop_pct
