-- streetlight_outages: one row per outage of a streetlight (보안등) and KST day. 보안등 고장·소등 사례.
-- A light should be on from sunset + $gold_lights_grace_min minutes to the next sunrise - grace
-- (sunrise and sunset in Goyang by NOAA's solar calculator, etl/aggregate/sun.py). Within a KST
-- day that is two windows: from midnight to sunrise - grace, and from sunset + grace to midnight.
-- A report (the readings a light sends at one time) is bad when lamp_on = 0 or fault_code <> 0,
-- good when lamp_on = 1 with no fault, and says nothing without either. A report stands from its time until the next report, for
-- at most one reporting interval; the day's first report also stands for the stretch since
-- midnight when it comes within one interval of it. An outage is a run of consecutive bad
-- reports standing in one window, with no good report between them (a silent stretch inside
-- the run is part of it): it starts where the first bad report starts to stand in the window
-- and ends at the first good report after it, or else where the last bad report stops standing
-- (one interval after it, or the window's end). Rows are cut at midnight so that a day's
-- rebuild needs only that day: an outage across midnight is two rows, the evening's with
-- `open_at_end` and the morning's with `open_at_start` (their `night` is the same).
-- Off reports outside the windows (daytime, the grace minutes) are never outages.
-- Parameters: $read_dates (the KST dates rebuilt), $gold_lights_grace_min; table sun.
-- @column date: KST date of period_start (partition)
-- @column period_start: start of the outage within the day, UTC (midnight when open_at_start)
-- @column period_end: end of the outage within the day, UTC (midnight when open_at_end)
-- @column device_id: streetlight (view devices)
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column dong_code: administrative dong (행정동) code
-- @column dong_ko: dong name, Korean
-- @column dong_en: dong name, English
-- @column night: KST date of the evening the night began (the same on both rows of an outage across midnight)
-- @column minutes: duration, period_end - period_start, minutes
-- @column reports: bad reports standing in the outage (lamp off or a fault code)
-- @column fault_reports: reports in the outage with a fault code other than 0
-- @column fault_codes: fault codes other than 0 seen in the outage, ascending, ';'-joined (null: lamp reported off without a fault code)
-- @column open_at_start: the day began in the outage: its first report, within one interval of midnight, was bad (the previous day's row normally has open_at_end)
-- @column open_at_end: the outage was still on at midnight (it continues in the next day's row, open_at_start)
WITH days AS (     -- the should-be-on windows of a day: [day_start, dawn) and [dusk, day_end)
    SELECT date, sunrise, sunset, day_start, day_start + INTERVAL 1 DAY AS day_end,
           sunrise - to_seconds($gold_lights_grace_min * 60) AS dawn,
           sunset + to_seconds($gold_lights_grace_min * 60) AS dusk
    FROM (SELECT *, CAST(date AS DATE)::TIMESTAMP AT TIME ZONE 'Asia/Seoul' AS day_start FROM sun)
    WHERE date IN (SELECT unnest($read_dates))
),
lights AS (       -- installed by the day
    SELECT v.device_id, v.district_code, v.district_ko, v.district_en, v.dong_code, v.dong_ko, v.dong_en,
           to_seconds(v.interval_s) AS step, d.*
    FROM devices v JOIN days d ON v.install_date <= CAST(d.date AS DATE)
    WHERE v.domain = 'streetlights' AND v.interval_s > 0
),
readings AS (     -- one row per light and report time
    SELECT device_id, ts, any_value(date) AS date, max(value) FILTER (metric = 'lamp_on') AS lamp_on,
           max(value) FILTER (metric = 'fault_code') AS fault_code
    FROM silver
    WHERE domain = 'streetlights' AND date IN (SELECT unnest($read_dates))
    GROUP BY device_id, ts
),
held AS (         -- bad: off or faulted, null when unknown; the time each report stands for (see above)
    SELECT r.*, l.day_start, l.day_end, l.dawn, l.dusk,
           CASE WHEN r.lamp_on = 0 OR r.fault_code <> 0 THEN true WHEN r.lamp_on = 1 THEN false END AS bad,
           CASE WHEN lag(r.ts) OVER w IS NULL AND r.ts < l.day_start + l.step THEN l.day_start ELSE r.ts END
               AS hold_start,
           least(lead(r.ts) OVER w, r.ts + l.step, l.day_end) AS hold_end
    FROM readings r JOIN lights l USING (device_id, date)
    WINDOW w AS (PARTITION BY r.device_id, r.date ORDER BY r.ts)
),
dark AS (         -- the part of it inside a window (a report stands for one interval: one window at most)
    SELECT *, CASE WHEN hold_start < dawn THEN 'morning' ELSE 'evening' END AS part,
           CASE WHEN hold_start < dawn THEN hold_start ELSE greatest(hold_start, dusk) END AS seg_start,
           CASE WHEN hold_start < dawn THEN least(hold_end, dawn) ELSE hold_end END AS seg_end
    FROM held WHERE bad IS NOT NULL AND (hold_start < dawn OR hold_end > dusk)
),
runs AS (         -- bad reports between the same two good ones share a run; next_start: the following report
    SELECT *, sum(CASE WHEN bad THEN 0 ELSE 1 END) OVER w AS run, lead(seg_start) OVER w AS next_start
    FROM dark
    WINDOW w AS (PARTITION BY device_id, date, part ORDER BY ts)
),
outages AS (
    SELECT device_id, date, part, run, any_value(day_start) AS day_start, any_value(day_end) AS day_end,
           min(seg_start) AS period_start, arg_max_null(coalesce(next_start, seg_end), ts) AS period_end,
           count(*) AS reports, count(*) FILTER (fault_code <> 0) AS fault_reports,
           nullif(array_to_string(list_sort(list_distinct(
               list(fault_code::INTEGER) FILTER (fault_code <> 0))), ';'), '') AS fault_codes
    FROM runs WHERE bad
    GROUP BY device_id, date, part, run
)
SELECT o.date, o.period_start, o.period_end, o.device_id, l.district_code, l.district_ko, l.district_en,
       l.dong_code, l.dong_ko, l.dong_en,
       strftime(CAST(o.date AS DATE) - CASE WHEN o.part = 'morning' THEN 1 ELSE 0 END, '%Y-%m-%d') AS night,
       (epoch(o.period_end) - epoch(o.period_start)) / 60.0 AS minutes, o.reports, o.fault_reports, o.fault_codes,
       o.period_start = o.day_start AS open_at_start, o.period_end = o.day_end AS open_at_end
FROM outages o JOIN lights l USING (device_id, date)
