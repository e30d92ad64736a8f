-- streetlights_daily: one row per streetlight (보안등) and KST day, for every light installed by
-- then. 보안등별 일 가동률·전력량. Should-be-on time, reports and the time each report stands for
-- are as in streetlight_outages: from midnight to sunrise - $gold_lights_grace_min minutes and
-- from sunset + grace to midnight (NOAA sunrise/sunset, etl/aggregate/sun.py); a report stands
-- until the next one, for at most one reporting interval. Time no report stands for (or only
-- one without lamp_on and fault code) is unreported, neither on nor off. Energy is power held as a step (each reading until the next,
-- at most one interval: a lamp switches, it does not ramp, so a trapezoid would smear the
-- switching over a whole interval), integrated over the whole day: W x s / 3.6e6 = kWh. It covers
-- only `energy_minutes`; a gap adds nothing.
-- Parameters: $read_dates (the KST dates rebuilt), $gold_lights_grace_min; table sun; reads
-- streetlight_outages (same run).
-- @column date: KST date (partition)
-- @column period_start: start of the KST day, UTC
-- @column period_end: end of the KST day, UTC
-- @column device_id: streetlight (view devices)
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column dong_code: administrative dong (행정동) code
-- @column dong_ko: dong name, Korean
-- @column dong_en: dong name, English
-- @column sunrise: sunrise in Goyang this day, UTC (NOAA solar calculator: the sun's centre 0.833° below the horizon)
-- @column sunset: sunset in Goyang this day, UTC
-- @column minutes_should_be_on: minutes of the day the light should be on (midnight to sunrise - grace, sunset + grace to midnight)
-- @column minutes_on: of those, minutes reported on without a fault (time-weighted, each report until the next, at most one interval)
-- @column minutes_off: of those, minutes reported off or with a fault code
-- @column minutes_unreported: of those, minutes no report stands for
-- @column uptime: minutes_on / (minutes_on + minutes_off): share of the reported should-be-on time the light was on (null when none was reported)
-- @column energy_kwh: energy used in the day, kWh (power as a step between readings; null when no power reading)
-- @column energy_minutes: minutes of the day the power readings stand for (the energy covers only these)
-- @column outages: outage rows of this light and day (streetlight_outages)
-- @column outage_minutes: their minutes (an outage includes silent stretches until a good report, unlike minutes_off)
-- @column fault_reports: fault_code readings other than 0 in the whole day
-- @column expected: readings expected in the day (metrics x 86400 / reporting interval)
-- @column observed: readings accepted in the day
-- @column flagged: accepted readings with a quality flag
-- @column missing_source: readings the source itself marked missing or invalid (quarantined: source_missing, source_flagged, sentinel, instrument_status)
-- @column missing_quarantined: readings quarantined for other reasons (docs/QUALITY.md)
-- @column missing_offline: expected readings that never arrived (device offline or late)
-- @column completeness: observed / expected (null when nothing was expected)
WITH days AS (     -- the should-be-on windows of a day: [day_start, dawn) and [dusk, day_end)
    SELECT date, sunrise, sunset, day_start, day_start + INTERVAL 1 DAY AS day_end,
           sunrise - to_seconds($gold_lights_grace_min * 60) AS dawn,
           sunset + to_seconds($gold_lights_grace_min * 60) AS dusk
    FROM (SELECT *, CAST(date AS DATE)::TIMESTAMP AT TIME ZONE 'Asia/Seoul' AS day_start FROM sun)
    WHERE date IN (SELECT unnest($read_dates))
),
lights AS (       -- installed by the day
    SELECT v.device_id, v.district_code, v.district_ko, v.district_en, v.dong_code, v.dong_ko, v.dong_en,
           to_seconds(v.interval_s) AS step, len(string_split(v.metrics, ' ')) * 86400 // v.interval_s AS expected, d.*
    FROM devices v JOIN days d ON v.install_date <= CAST(d.date AS DATE)
    WHERE v.domain = 'streetlights' AND v.interval_s > 0
),
readings AS (     -- one row per light and report time
    SELECT device_id, ts, any_value(date) AS date, max(value) FILTER (metric = 'lamp_on') AS lamp_on,
           max(value) FILTER (metric = 'fault_code') AS fault_code, max(value) FILTER (metric = 'power') AS power,
           count(*) AS observed, count(quality_flag) AS flagged
    FROM silver
    WHERE domain = 'streetlights' AND date IN (SELECT unnest($read_dates))
    GROUP BY device_id, ts
),
held AS (         -- bad: off or faulted, null when unknown; the time each report stands for (as streetlight_outages)
    SELECT r.*, l.day_start, l.day_end, l.dawn, l.dusk,
           CASE WHEN r.lamp_on = 0 OR r.fault_code <> 0 THEN true WHEN r.lamp_on = 1 THEN false END AS bad,
           CASE WHEN lag(r.ts) OVER w IS NULL AND r.ts < l.day_start + l.step THEN l.day_start ELSE r.ts END
               AS hold_start,
           least(lead(r.ts) OVER w, r.ts + l.step, l.day_end) AS hold_end
    FROM readings r JOIN lights l USING (device_id, date)
    WINDOW w AS (PARTITION BY r.device_id, r.date ORDER BY r.ts)
),
spans AS (        -- seconds each report stands for: inside the should-be-on windows, and in all
    SELECT *, greatest(least(epoch(hold_end), epoch(dawn)) - epoch(hold_start), 0)
              + greatest(epoch(hold_end) - greatest(epoch(hold_start), epoch(dusk)), 0) AS dark_s,
           epoch(hold_end) - epoch(hold_start) AS held_s
    FROM held
),
per_light AS (
    SELECT device_id, date, sum(dark_s) FILTER (NOT bad) AS on_s, sum(dark_s) FILTER (bad) AS off_s,
           sum(power * held_s) / 3.6e6 AS energy_kwh, sum(held_s) FILTER (power IS NOT NULL) / 60.0 AS energy_minutes,
           count(*) FILTER (fault_code <> 0) AS fault_reports, sum(observed)::BIGINT AS observed,
           sum(flagged)::BIGINT AS flagged
    FROM spans
    GROUP BY device_id, date
),
quarantined AS (
    SELECT device_id, date,
           count(*) FILTER (source_marked(reason)) AS missing_source,
           count(*) FILTER (NOT source_marked(reason)) AS missing_quarantined
    FROM quarantine
    WHERE date IN (SELECT unnest($read_dates)) AND domain = 'streetlights' AND device_id IS NOT NULL AND ts IS NOT NULL
    GROUP BY device_id, date
),
outages AS (
    SELECT device_id, date, count(*) AS outages, sum(minutes) AS outage_minutes
    FROM streetlight_outages GROUP BY device_id, date
),
joined AS (
    SELECT l.*, epoch(l.dawn) - epoch(l.day_start) + epoch(l.day_end) - epoch(l.dusk) AS should_s,
           coalesce(p.on_s, 0.0) AS on_s, coalesce(p.off_s, 0.0) AS off_s,
           p.energy_kwh, coalesce(p.energy_minutes, 0.0) AS energy_minutes,
           coalesce(p.fault_reports, 0) AS fault_reports,
           coalesce(o.outages, 0) AS outages, coalesce(o.outage_minutes, 0.0) AS outage_minutes,
           coalesce(p.observed, 0) AS observed, coalesce(p.flagged, 0) AS flagged,
           coalesce(q.missing_source, 0) AS missing_source, coalesce(q.missing_quarantined, 0) AS missing_quarantined
    FROM lights l
    LEFT JOIN per_light p USING (device_id, date)
    LEFT JOIN outages o USING (device_id, date)
    LEFT JOIN quarantined q USING (device_id, date)
)
SELECT date, day_start AS period_start, day_end AS period_end, device_id,
       district_code, district_ko, district_en, dong_code, dong_ko, dong_en, sunrise, sunset,
       should_s / 60.0 AS minutes_should_be_on, on_s / 60.0 AS minutes_on, off_s / 60.0 AS minutes_off,
       greatest(should_s - on_s - off_s, 0.0) / 60.0 AS minutes_unreported, on_s / nullif(on_s + off_s, 0) AS uptime,
       energy_kwh, energy_minutes, outages, outage_minutes, fault_reports,
       expected, observed, flagged, missing_source, missing_quarantined,
       greatest(expected - observed - missing_source - missing_quarantined, 0) AS missing_offline,
       observed / nullif(expected, 0) AS completeness
FROM joined
