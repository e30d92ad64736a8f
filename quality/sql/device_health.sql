-- device_health: one row per registered device and KST day.
-- completeness = distinct report times / reports expected at the device's interval over the
-- part of the day the device was installed and its source had delivered data for (from the
-- source's first to its newest reading that day: a day in progress, or a source that started
-- mid-day, is not penalised).
-- status: offline (no report although due), degraded (completeness < $degraded_below, a stuck,
-- spike or quarantined reading, battery < $low_battery %, or a lamp fault code), ok otherwise;
-- event-driven devices (interval 0) are ok when they reported and idle when they did not.
-- Days on which a device's source delivered nothing at all have no rows (see quality_daily).
-- Parameters: $dates, $degraded_below, $low_battery. Views: silver, quarantine, registry,
-- previous_health (device_health of earlier days; may be empty).
WITH days AS (
    SELECT d AS date,
           (d::DATE::TIMESTAMP - INTERVAL 9 HOUR) AT TIME ZONE 'UTC' AS day_start
    FROM (SELECT unnest($dates) AS d)
),
readings AS (
    SELECT device_id, date,
           max(ts) AS last_seen,
           count(DISTINCT ts) AS reports,
           count(*) FILTER (WHERE contains(quality_flag, 'stuck')) AS stuck,
           count(*) FILTER (WHERE contains(quality_flag, 'spike')) AS spikes,
           count(*) FILTER (WHERE contains(quality_flag, 'implausible')) AS implausible,
           arg_max(value, ts) FILTER (WHERE metric = 'battery') AS battery,
           max(value) FILTER (WHERE metric = 'fault_code') AS max_fault_code
    FROM silver WHERE date IN (SELECT unnest($dates))
    GROUP BY ALL
),
watermarks AS (
    SELECT source, date, min(ts) AS first_reading, max(ts) AS watermark
    FROM silver WHERE date IN (SELECT unnest($dates)) GROUP BY ALL
),
quarantined AS (
    SELECT device_id, date, count(*) AS quarantined
    FROM quarantine WHERE date IN (SELECT unnest($dates)) AND device_id IS NOT NULL GROUP BY ALL
),
previous AS (
    SELECT device_id, max(last_seen) AS last_seen
    FROM previous_health GROUP BY ALL
),
grid AS (
    SELECT r.device_id, r.domain, r.kind, r.source, r.district_code, r.district_en, r.interval_s,
           d.date, d.day_start,
           greatest(d.day_start, w.first_reading,
                    (r.install_date::TIMESTAMP - INTERVAL 9 HOUR) AT TIME ZONE 'UTC') AS active_from,
           least(d.day_start + INTERVAL 1 DAY, w.watermark) AS active_to
    FROM registry r CROSS JOIN days d
    JOIN watermarks w ON w.source = r.source AND w.date = d.date   -- a silent source is a freshness
    WHERE r.install_date <= d.date::DATE                            -- problem (quality_daily), not 3000 offline devices
),
joined AS (
    SELECT g.*, coalesce(rd.reports, 0) AS reports, coalesce(rd.last_seen, p.last_seen) AS last_seen,
           coalesce(rd.stuck, 0) AS stuck, coalesce(rd.spikes, 0) AS spikes,
           coalesce(rd.implausible, 0) AS implausible, coalesce(q.quarantined, 0) AS quarantined,
           rd.battery, rd.max_fault_code,
           CASE WHEN g.interval_s > 0 AND g.active_to > g.active_from
                THEN floor(epoch(g.active_to - g.active_from) / g.interval_s) + 1 END AS expected
    FROM grid g
    LEFT JOIN readings rd ON rd.device_id = g.device_id AND rd.date = g.date
    LEFT JOIN quarantined q ON q.device_id = g.device_id AND q.date = g.date
    LEFT JOIN previous p ON p.device_id = g.device_id
)
SELECT device_id, domain, kind, source, district_code, district_en, date,
       last_seen, reports::BIGINT AS reports, expected::BIGINT AS expected,
       CASE WHEN expected > 0 THEN least(1.0, reports / expected) END AS completeness,
       stuck::BIGINT AS stuck, spikes::BIGINT AS spikes, implausible::BIGINT AS implausible,
       quarantined::BIGINT AS quarantined, battery,
       CASE
           WHEN interval_s = 0 THEN CASE WHEN reports > 0 THEN 'ok' ELSE 'idle' END
           WHEN expected IS NULL THEN 'ok'
           WHEN reports = 0 THEN 'offline'
           WHEN reports / expected < $degraded_below OR stuck > 0 OR spikes > 0 OR quarantined > 0
                OR battery < $low_battery OR max_fault_code > 0 THEN 'degraded'
           ELSE 'ok'
       END AS status
FROM joined
ORDER BY date, device_id
