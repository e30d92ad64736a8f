-- daycare_daily: one row per daycare facility (어린이집) and KST day, for every facility with a
-- gate reader installed by then. 어린이집별 일 등·하원 수 (소수 값 비공개). Counts of the tag
-- passages at the facility's gates; children are the distinct tags that arrived. Tags are
-- personal data: no tag, gate or per-child value leaves this model, only facility totals. A count
-- from 1 to $gold_daycare_min_count - 1 (k - 1) is suppressed (null), and so is a passage count
-- behind which fewer than k distinct children stand (one child passing k times is still one
-- child); `suppressed` says a row has a withheld count. A zero describes no child and is shown:
-- every facility gets a row every day, so a missing row never stands for a small count (a zero
-- may also be a silent gate: see device_health). Rows are publishable only from
-- `publishable_from` (the day + $gold_daycare_delay_days), which the publish step enforces.
-- Gates are event-driven (nothing is expected), and the counts of quarantined passages are not
-- given: they would be passages again, outside the suppression.
-- Parameters: $read_dates (the KST dates rebuilt), $gold_daycare_min_count, $gold_daycare_delay_days.
-- @column date: KST date (partition)
-- @column period_start: start of the KST day, UTC
-- @column period_end: end of the KST day, UTC
-- @column facility_id: daycare facility (registry group_id)
-- @column facility_ko: facility name, Korean
-- @column facility_en: facility name, English
-- @column district_code: district (구) code
-- @column district_ko: district name, Korean
-- @column district_en: district name, English
-- @column dong_code: administrative dong (행정동) code
-- @column dong_ko: dong name, Korean
-- @column dong_en: dong name, English
-- @column capacity: children the facility is licensed for (registry)
-- @column arrivals: inbound tag passages (등원); null when suppressed
-- @column departures: outbound tag passages (하원); null when suppressed
-- @column children: distinct children who arrived; null when suppressed
-- @column suppressed: at least one count of the row is withheld (fewer than min_count children behind it)
-- @column min_count: the suppression threshold k in force ($gold_daycare_min_count)
-- @column publishable_from: first KST date the row may be published (date + the delay in days)
WITH days AS (
    SELECT d AS date, CAST(d AS DATE) AS day, CAST(d AS DATE)::TIMESTAMP AT TIME ZONE 'Asia/Seoul' AS day_start
    FROM (SELECT unnest($read_dates) AS d)
),
gates AS (
    SELECT device_id, group_id FROM devices WHERE domain = 'daycare_safety' AND group_id <> ''
),
facilities AS (
    SELECT group_id, any_value(group_name_ko) AS facility_ko, any_value(group_name_en) AS facility_en,
           any_value(district_code) AS district_code, any_value(district_ko) AS district_ko,
           any_value(district_en) AS district_en, any_value(dong_code) AS dong_code, any_value(dong_ko) AS dong_ko,
           any_value(dong_en) AS dong_en, max(capacity) AS capacity, min(install_date) AS install_date
    FROM devices WHERE domain = 'daycare_safety' AND group_id <> ''
    GROUP BY group_id
),
counts AS (     -- the only place tags are read: distinct counts per facility and day
    SELECT g.group_id, s.date,
           count(*) FILTER (s.metric = 'arrival') AS arrivals,
           count(*) FILTER (s.metric = 'departure') AS departures,
           count(DISTINCT s.subject) FILTER (s.metric = 'arrival') AS children,
           count(DISTINCT s.subject) FILTER (s.metric = 'departure') AS children_leaving
    FROM silver s JOIN gates g USING (device_id)
    WHERE s.domain = 'daycare_safety' AND s.date IN (SELECT unnest($read_dates))
    GROUP BY g.group_id, s.date
),
shown AS (
    SELECT f.*, d.date, d.day, d.day_start,
           CASE WHEN coalesce(c.arrivals, 0) = 0
                  OR (c.arrivals >= $gold_daycare_min_count AND c.children >= $gold_daycare_min_count)
                THEN coalesce(c.arrivals, 0) END AS arrivals,
           CASE WHEN coalesce(c.departures, 0) = 0
                  OR (c.departures >= $gold_daycare_min_count AND c.children_leaving >= $gold_daycare_min_count)
                THEN coalesce(c.departures, 0) END AS departures,
           CASE WHEN coalesce(c.children, 0) = 0 OR c.children >= $gold_daycare_min_count
                THEN coalesce(c.children, 0) END AS children
    FROM facilities f
    JOIN days d ON f.install_date <= d.day
    LEFT JOIN counts c ON c.group_id = f.group_id AND c.date = d.date
)
SELECT date, day_start AS period_start, day_start + INTERVAL 1 DAY AS period_end, group_id AS facility_id,
       facility_ko, facility_en, district_code, district_ko, district_en, dong_code, dong_ko, dong_en, capacity,
       arrivals, departures, children, arrivals IS NULL OR departures IS NULL OR children IS NULL AS suppressed,
       $gold_daycare_min_count AS min_count, day + $gold_daycare_delay_days AS publishable_from
FROM shown
