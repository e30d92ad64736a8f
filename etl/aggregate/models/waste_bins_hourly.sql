-- waste_bins_hourly: one row per smart bin and hour since its installation. 쓰레기통별 시간 적재율.
-- Hour-beginning: the hour [period_start, period_end). Fill level and battery come from the
-- hour's accepted readings (flagged ones included, counted in `flagged`); `_last` is the
-- reading with the latest ts in the hour. An hour without a reading has null values and
-- shows up in `missing_offline`.
-- Parameters: $read_dates (KST dates: the dates to rebuild and the day before them).
-- @column date: KST date of period_start (partition)
-- @column hour: KST hour of period_start, 0-23
-- @column period_start: start of the hour, UTC
-- @column period_end: end of the hour, UTC
-- @column device_id: smart bin (view devices)
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column dong_code: administrative dong (동) code
-- @column dong_ko: dong name, Korean
-- @column dong_en: dong name, English
-- @column fill_level_mean: mean fill level of the hour's readings, %
-- @column fill_level_max: highest fill level of the hour, %
-- @column fill_level_last: fill level of the hour's last reading, %
-- @column battery_last: battery level of the hour's last reading, %
-- @column battery_min: lowest battery level of the hour, %
-- @column tilted: true when any tilt reading of the hour says the bin is tilted (null: no tilt reading)
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
    SELECT v.device_id, v.district_code, v.district_ko, v.district_en, v.dong_code, v.dong_ko, v.dong_en,
           len(string_split(v.metrics, ' ')) * 3600 // nullif(v.interval_s, 0) AS expected,
           h.day, h.hour, h.period_start
    FROM devices v JOIN hours h ON v.install_date <= h.day
    WHERE v.domain = 'waste_bins' AND v.kind = 'smart_bin'
),
hourly AS (
    SELECT device_id, date_trunc('hour', ts) AS period_start,
           avg(value) FILTER (metric = 'fill_level') AS fill_level_mean,
           max(value) FILTER (metric = 'fill_level') AS fill_level_max,
           arg_max(value, ts) FILTER (metric = 'fill_level') AS fill_level_last,
           arg_max(value, ts) FILTER (metric = 'battery') AS battery_last,
           min(value) FILTER (metric = 'battery') AS battery_min,
           bool_or(value = 1) FILTER (metric = 'tilt') AS tilted,
           count(*) AS observed, count(quality_flag) AS flagged
    FROM silver WHERE domain = 'waste_bins' AND date IN (SELECT unnest($read_dates))
    GROUP BY ALL
),
quarantined AS (
    SELECT device_id, date_trunc('hour', ts) AS period_start,
           count(*) FILTER (source_marked(reason)) AS missing_source,
           count(*) FILTER (NOT source_marked(reason)) AS missing_quarantined
    FROM quarantine
    WHERE date IN (SELECT unnest($read_dates)) AND domain = 'waste_bins' AND device_id IS NOT NULL AND ts IS NOT NULL
    GROUP BY ALL
)
SELECT strftime(g.day, '%Y-%m-%d') AS date, g.hour::INTEGER AS hour, g.period_start,
       g.period_start + INTERVAL 1 HOUR AS period_end, g.device_id, g.district_code, g.district_ko,
       g.district_en, g.dong_code, g.dong_ko, g.dong_en,
       h.fill_level_mean, h.fill_level_max, h.fill_level_last, h.battery_last, h.battery_min, h.tilted,
       g.expected, coalesce(h.observed, 0) AS observed, coalesce(h.flagged, 0) AS flagged,
       coalesce(q.missing_source, 0) AS missing_source, coalesce(q.missing_quarantined, 0) AS missing_quarantined,
       greatest(coalesce(g.expected, 0) - coalesce(h.observed, 0) - coalesce(q.missing_source, 0)
                - coalesce(q.missing_quarantined, 0), 0) AS missing_offline
FROM grid g
LEFT JOIN hourly h ON h.device_id = g.device_id AND h.period_start = g.period_start
LEFT JOIN quarantined q ON q.device_id = g.device_id AND q.period_start = g.period_start
