-- parking_lot_hourly: one row per parking lot (the registry's group_id of its spaces) and hour.
-- 주차장별 시간 점유율. Hour-beginning: the hour [period_start, period_end). A space's sensor
-- sends its state on every change and with an hourly heartbeat; each `occupied` reading holds
-- from its ts until the space's next reading, but for at most two heartbeat intervals
-- (2 x interval_s: a sensor that missed two heartbeats is no longer known, as in
-- parking_lot_availability). The state at the start of an hour is the last reading before it,
-- from the day before if need be (the lookback). A space whose state is not known for part of
-- the hour does not count in that part: `occupancy_rate` is the occupied share of the
-- space-time whose state is known. Expected readings are the heartbeats' (metrics x 3600 /
-- interval_s per installed space); the change uplinks come on top, so `observed` may exceed
-- `expected`, and `missing_offline` is then 0.
-- Parameters: $read_dates (KST dates: the dates to rebuild and the day before them).
-- @column date: KST date of period_start (partition)
-- @column hour: KST hour of period_start, 0-23
-- @column period_start: start of the hour, UTC
-- @column period_end: end of the hour, UTC
-- @column lot_id: parking lot (registry group_id of its spaces)
-- @column lot_name_ko: parking lot name, Korean
-- @column lot_name_en: parking lot name, English
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column spaces: spaces installed in the lot
-- @column spaces_known: spaces whose state is known for at least part of the hour
-- @column occupancy_rate: occupied space-time / space-time with a known state, 0-1 (null: no state known)
-- @column occupied_mean: spaces known to be occupied, averaged over the hour
-- @column occupied_peak: most spaces known to be occupied at the same time in the hour
-- @column arrivals: changes of a space from free to occupied in the hour
-- @column expected: readings expected in the hour: heartbeats (metrics x 3600 / heartbeat interval) of the installed spaces
-- @column observed: readings accepted in the hour, heartbeats and change uplinks
-- @column flagged: accepted readings with a quality flag
-- @column missing_source: readings the source itself marked missing or invalid (quarantined: source_missing, source_flagged, sentinel, instrument_status)
-- @column missing_quarantined: readings quarantined for other reasons (docs/QUALITY.md)
-- @column missing_offline: expected readings that never arrived, at least 0 (change uplinks can outnumber the missed heartbeats)
WITH hours AS (
    SELECT d AS day, h AS hour, (d + to_hours(h)) AT TIME ZONE 'Asia/Seoul' AS period_start
    FROM (SELECT CAST(unnest($read_dates) AS DATE) AS d), range(24) t(h)
),
spaces AS (
    SELECT device_id, group_id AS lot_id, group_name_ko AS lot_name_ko, group_name_en AS lot_name_en,
           district_code, district_ko, district_en, install_date, interval_s,
           len(string_split(metrics, ' ')) * 3600 // nullif(interval_s, 0) AS expected
    FROM devices WHERE domain = 'parking' AND kind = 'parking_space' AND group_id <> ''
),
grid AS (
    SELECT s.lot_id, any_value(s.lot_name_ko) AS lot_name_ko, any_value(s.lot_name_en) AS lot_name_en,
           any_value(s.district_code) AS district_code, any_value(s.district_ko) AS district_ko,
           any_value(s.district_en) AS district_en, h.day, h.hour, h.period_start,
           count(*) AS spaces, sum(s.expected)::BIGINT AS expected
    FROM spaces s JOIN hours h ON s.install_date <= h.day
    GROUP BY s.lot_id, h.day, h.hour, h.period_start
),
states AS (                        -- each reading's state, until the next one or two heartbeats at most
    SELECT r.device_id, s.lot_id, r.value = 1 AS occupied, r.ts AS state_start,
           least(lead(r.ts) OVER w, r.ts + to_seconds(2 * nullif(s.interval_s, 0)),
                 (SELECT max(period_start) + INTERVAL 1 HOUR FROM hours)) AS state_end,
           coalesce(lag(r.value) OVER w = 0 AND r.value = 1, false) AS arrival
    FROM silver r JOIN spaces s ON s.device_id = r.device_id
    WHERE r.domain = 'parking' AND r.metric = 'occupied' AND r.date IN (SELECT unnest($read_dates))
    WINDOW w AS (PARTITION BY r.device_id ORDER BY r.ts)
),
pieces AS (                        -- the states cut at the hour boundaries
    SELECT lot_id, period_start, device_id, occupied, greatest(state_start, period_start) AS t0,
           least(state_end, period_start + INTERVAL 1 HOUR) AS t1
    FROM (SELECT *, unnest(generate_series(date_trunc('hour', state_start), state_end - INTERVAL 1 MICROSECOND,
                                           INTERVAL 1 HOUR)) AS period_start
          FROM states)
),
space_hours AS (
    SELECT lot_id, period_start, device_id, sum(epoch(t1) - epoch(t0)) AS known_s,
           coalesce(sum(epoch(t1) - epoch(t0)) FILTER (occupied), 0) AS occupied_s
    FROM pieces GROUP BY ALL
),
occupancy AS (
    SELECT lot_id, period_start, count(*) AS spaces_known, sum(known_s) AS known_s, sum(occupied_s) AS occupied_s
    FROM space_hours GROUP BY ALL
),
steps AS (                         -- +1 when an occupied piece starts, -1 when it ends (ends first)
    SELECT lot_id, period_start, t0 AS t, 1 AS delta FROM pieces WHERE occupied
    UNION ALL
    SELECT lot_id, period_start, t1 AS t, -1 AS delta FROM pieces WHERE occupied
),
peaks AS (
    SELECT lot_id, period_start, max(running)::BIGINT AS occupied_peak
    FROM (SELECT *, sum(delta) OVER (PARTITION BY lot_id, period_start ORDER BY t, delta
                                     ROWS UNBOUNDED PRECEDING) AS running FROM steps)
    GROUP BY ALL
),
arrivals AS (
    SELECT lot_id, date_trunc('hour', state_start) AS period_start, count(*) AS arrivals
    FROM states WHERE arrival GROUP BY ALL
),
readings AS (
    SELECT s.lot_id, date_trunc('hour', r.ts) AS period_start, count(*) AS observed, count(r.quality_flag) AS flagged
    FROM silver r JOIN spaces s ON s.device_id = r.device_id
    WHERE r.domain = 'parking' AND r.date IN (SELECT unnest($read_dates))
    GROUP BY ALL
),
quarantined AS (
    SELECT s.lot_id, date_trunc('hour', q.ts) AS period_start,
           count(*) FILTER (source_marked(q.reason)) AS missing_source,
           count(*) FILTER (NOT source_marked(q.reason)) AS missing_quarantined
    FROM quarantine q JOIN spaces s ON s.device_id = q.device_id
    WHERE q.date IN (SELECT unnest($read_dates)) AND q.domain = 'parking' AND q.ts IS NOT NULL
    GROUP BY ALL
)
SELECT strftime(g.day, '%Y-%m-%d') AS date, g.hour::INTEGER AS hour, g.period_start,
       g.period_start + INTERVAL 1 HOUR AS period_end, g.lot_id, g.lot_name_ko, g.lot_name_en,
       g.district_code, g.district_ko, g.district_en, g.spaces, coalesce(o.spaces_known, 0) AS spaces_known,
       o.occupied_s / nullif(o.known_s, 0) AS occupancy_rate, o.occupied_s / 3600.0 AS occupied_mean,
       CASE WHEN o.spaces_known > 0 THEN coalesce(p.occupied_peak, 0) END AS occupied_peak,
       coalesce(a.arrivals, 0) AS arrivals,
       g.expected, coalesce(r.observed, 0) AS observed, coalesce(r.flagged, 0) AS flagged,
       coalesce(q.missing_source, 0) AS missing_source, coalesce(q.missing_quarantined, 0) AS missing_quarantined,
       greatest(coalesce(g.expected, 0) - coalesce(r.observed, 0) - coalesce(q.missing_source, 0)
                - coalesce(q.missing_quarantined, 0), 0) AS missing_offline
FROM grid g
LEFT JOIN occupancy o ON o.lot_id = g.lot_id AND o.period_start = g.period_start
LEFT JOIN peaks p ON p.lot_id = g.lot_id AND p.period_start = g.period_start
LEFT JOIN arrivals a ON a.lot_id = g.lot_id AND a.period_start = g.period_start
LEFT JOIN readings r ON r.lot_id = g.lot_id AND r.period_start = g.period_start
LEFT JOIN quarantined q ON q.lot_id = g.lot_id AND q.period_start = g.period_start
