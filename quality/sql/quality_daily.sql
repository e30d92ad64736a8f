-- quality_daily: one row per domain, source and KST day.
-- received = accepted + quarantined + duplicates; flagged rows are part of accepted.
-- Duplicates and check pass rates are counted on the KST day of their batch's window start;
-- accepted/flagged/quarantined on the day of the reading (of receipt when it had no time).
-- Parameters: $dates (list of KST dates 'YYYY-MM-DD' to rebuild).
WITH accepted AS (
    SELECT domain, source, date, count(*) AS accepted, count(quality_flag) AS flagged
    FROM silver WHERE date IN (SELECT unnest($dates)) GROUP BY ALL
),
flags AS (
    SELECT domain, source, date, list(struct_pack(flag := flag, n := n) ORDER BY flag) AS flagged_by
    FROM (SELECT domain, source, date, flag, count(*) AS n
          FROM (SELECT domain, source, date, unnest(string_split(quality_flag, ';')) AS flag
                FROM silver WHERE date IN (SELECT unnest($dates)) AND quality_flag IS NOT NULL)
          GROUP BY ALL)
    GROUP BY ALL
),
quarantined AS (
    SELECT coalesce(q.domain, s.domain) AS domain, q.source, q.date, count(*) AS quarantined,
           list(DISTINCT q.reason ORDER BY q.reason) AS reasons
    FROM quarantine q LEFT JOIN source_domains s ON s.source = q.source
    WHERE q.date IN (SELECT unnest($dates)) GROUP BY ALL
),
reasons AS (
    SELECT domain, source, date, list(struct_pack(reason := reason, n := n) ORDER BY reason) AS quarantined_by
    FROM (SELECT coalesce(q.domain, s.domain) AS domain, q.source, q.date, q.reason, count(*) AS n
          FROM quarantine q LEFT JOIN source_domains s ON s.source = q.source
          WHERE q.date IN (SELECT unnest($dates)) GROUP BY ALL)
    GROUP BY ALL
),
dups AS (
    SELECT s.domain, b.source, c.date, sum(b.duplicates) AS duplicates, count(*) AS batches,
           count(*) FILTER (WHERE b.quality = 'warn') AS batches_with_warnings
    FROM batches b
    JOIN (SELECT DISTINCT batch_id, date FROM quality_checks WHERE date IN (SELECT unnest($dates))) c USING (batch_id)
    JOIN source_domains s ON s.source = b.source
    GROUP BY ALL
),
rates AS (
    SELECT source, date,
           list(struct_pack(suite := suite, expectation := expectation, target := target, code := code,
                            action := action, evaluated := evaluated, failed := failed,
                            pass_rate := CASE WHEN evaluated > 0 THEN 1 - failed / evaluated END)
                ORDER BY suite, expectation, target) AS checks
    FROM (SELECT source, date, suite, expectation, target, code, action,
                 sum(evaluated)::BIGINT AS evaluated, sum(failed)::BIGINT AS failed
          FROM quality_checks WHERE date IN (SELECT unnest($dates)) GROUP BY ALL)
    GROUP BY ALL
),
keys AS (
    SELECT domain, source, date FROM accepted
    UNION SELECT domain, source, date FROM quarantined
    UNION SELECT domain, source, date FROM dups
)
SELECT k.domain, k.source, k.date,
       (coalesce(a.accepted, 0) + coalesce(q.quarantined, 0) + coalesce(d.duplicates, 0))::BIGINT AS received,
       coalesce(a.accepted, 0)::BIGINT AS accepted,
       coalesce(a.flagged, 0)::BIGINT AS flagged,
       coalesce(q.quarantined, 0)::BIGINT AS quarantined,
       coalesce(d.duplicates, 0)::BIGINT AS duplicates,
       coalesce(d.batches, 0)::BIGINT AS batches,
       coalesce(d.batches_with_warnings, 0)::BIGINT AS batches_with_warnings,
       f.flagged_by, r.quarantined_by, rt.checks
FROM keys k
LEFT JOIN accepted a USING (domain, source, date)
LEFT JOIN quarantined q USING (domain, source, date)
LEFT JOIN dups d USING (domain, source, date)
LEFT JOIN flags f USING (domain, source, date)
LEFT JOIN reasons r USING (domain, source, date)
LEFT JOIN rates rt USING (source, date)
ORDER BY k.date, k.domain, k.source
