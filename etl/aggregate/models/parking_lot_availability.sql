-- parking_lot_availability: one row per parking lot (the registry's group_id of its spaces) and
-- KST day: its availability as of the day's latest reading in the lot (`as_of`), which is the
-- end of the day for a complete day and the latest news while the day is still arriving.
-- 주차장별 최신 가용 면수. A space's state is its last `occupied` reading at or before `as_of`
-- (from the day before if need be: the lookback). A space is stale, and counted neither
-- occupied nor free, when it sent no occupancy reading in the two heartbeat intervals
-- (2 x interval_s, 2 hours for the hourly heartbeat) up to `as_of`: a live sensor reports at
-- least hourly, so two missed heartbeats mean its state is no longer known (the same rule
-- holds a state in parking_lot_hourly). spaces = occupied + free + stale_spaces.
-- Parameters: $read_dates (KST dates: the dates to rebuild and the day before them).
-- @column date: KST date it is as of (partition)
-- @column period_start: start of the KST day, UTC
-- @column period_end: end of the KST day, UTC
-- @column lot_id: parking lot (registry group_id of its spaces)
-- @column lot_name_ko: parking lot name, Korean
-- @column lot_name_en: parking lot name, English
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column lat: latitude of the lot, mean of its spaces (WGS84)
-- @column lon: longitude of the lot, mean of its spaces (WGS84)
-- @column as_of: latest occupancy reading of the lot's spaces that day, UTC (null: none that day; staleness is then judged at period_end)
-- @column spaces: spaces installed in the lot
-- @column occupied: spaces whose known state at as_of is occupied
-- @column free: spaces whose known state at as_of is free
-- @column stale_spaces: spaces without an occupancy reading in the 2 heartbeat intervals up to as_of (state unknown)
-- @column occupancy_rate: occupied / (occupied + free), 0-1 (null: no space known)
WITH days AS (
    SELECT CAST(unnest($read_dates) AS DATE) AS day
),
spaces AS (
    SELECT v.device_id, v.group_id AS lot_id, v.group_name_ko AS lot_name_ko, v.group_name_en AS lot_name_en,
           v.district_code, v.district_ko, v.district_en, v.lat, v.lon, v.interval_s,
           d.day, strftime(d.day, '%Y-%m-%d') AS date, d.day::TIMESTAMP AT TIME ZONE 'Asia/Seoul' AS period_start
    FROM devices v JOIN days d ON v.install_date <= d.day
    WHERE v.domain = 'parking' AND v.kind = 'parking_space' AND v.group_id <> ''
),
readings AS (
    SELECT device_id, date, ts, value FROM silver
    WHERE domain = 'parking' AND metric = 'occupied' AND date IN (SELECT unnest($read_dates))
),
as_of AS (
    SELECT s.lot_id, s.date, max(r.ts) AS as_of
    FROM spaces s JOIN readings r ON r.device_id = s.device_id AND r.date = s.date
    GROUP BY ALL
),
latest AS (                        -- each space's last reading up to the end of the day (lookback included)
    SELECT s.device_id, s.date, max(r.ts) AS last_ts, arg_max(r.value, r.ts) AS last_value
    FROM spaces s JOIN readings r ON r.device_id = s.device_id
     AND r.ts >= s.period_start - INTERVAL 1 DAY AND r.ts < s.period_start + INTERVAL 1 DAY
    GROUP BY ALL
),
states AS (
    SELECT s.*, a.as_of,
           l.last_ts >= coalesce(a.as_of, s.period_start + INTERVAL 1 DAY) - to_seconds(2 * s.interval_s) AS known,
           l.last_value = 1 AS is_occupied
    FROM spaces s
    LEFT JOIN as_of a ON a.lot_id = s.lot_id AND a.date = s.date
    LEFT JOIN latest l ON l.device_id = s.device_id AND l.date = s.date
)
SELECT date, any_value(period_start) AS period_start, any_value(period_start) + INTERVAL 1 DAY AS period_end,
       lot_id, any_value(lot_name_ko) AS lot_name_ko, any_value(lot_name_en) AS lot_name_en,
       any_value(district_code) AS district_code, any_value(district_ko) AS district_ko,
       any_value(district_en) AS district_en, avg(lat) AS lat, avg(lon) AS lon, any_value(as_of) AS as_of,
       count(*) AS spaces, count(*) FILTER (known AND is_occupied) AS occupied,
       count(*) FILTER (known AND NOT is_occupied) AS free, count(*) FILTER (known IS NOT TRUE) AS stale_spaces,
       count(*) FILTER (known AND is_occupied) / nullif(count(*) FILTER (known), 0) AS occupancy_rate
FROM states
GROUP BY date, lot_id
