"""SQL of the quality report (contract 9; idservice/persons/quality.py), run as the auditor.

Each statement answers (kind, province, count, examples): examples are at most $2 findings per
(kind, province), each `pins` + `detail`, newest issuance first (the findings an auditor can
still act on with the office that made them). $1 province code or null (all provinces).
"""

# Person-by-person kinds, one pass over person. $3 today, $4 known province codes (a parent
# PIN must start with one of them to be well-formed beyond its 12 digits).
ROW_FINDINGS = """
WITH parents AS (
  SELECT p.pin, p.province_code, p.date_of_birth, p.registered_on, p.status, p.issued_at,
         par.role, par.ppin
    FROM person p
    LEFT JOIN LATERAL (VALUES ('father', p.record->'father'->>'pin'),
                              ('mother', p.record->'mother'->>'pin')) AS par(role, ppin)
           ON par.ppin IS NOT NULL
   WHERE ($1::text IS NULL OR p.province_code = $1)
), found AS (
  SELECT 'parent_pin_malformed' AS kind, province_code, pin, issued_at,
         role || ' PIN ' || ppin || ' is not a PIN (12 digits of a real province code)' AS detail
    FROM parents
   WHERE ppin IS NOT NULL AND (ppin !~ '^[0-9]{12}$' OR left(ppin, 3) <> ALL($4::text[]))
  UNION ALL
  SELECT 'parent_too_young', pa.province_code, pa.pin, pa.issued_at,
         pa.role || ' ' || pa.ppin || ' was ' || (extract(year FROM pa.date_of_birth)::int
           - coalesce(extract(year FROM par.date_of_birth)::int, pa.pyear)) || ' at the birth'
    FROM (SELECT *, CASE substr(ppin, 4, 1)
                      WHEN '0' THEN 1900 WHEN '1' THEN 1900 WHEN '2' THEN 2000 WHEN '3' THEN 2000
                      WHEN '4' THEN 2100 WHEN '5' THEN 2100 WHEN '6' THEN 2200 WHEN '7' THEN 2200
                      ELSE 2300 END + substr(ppin, 5, 2)::int AS pyear
            FROM parents WHERE ppin ~ '^[0-9]{12}$') pa
    LEFT JOIN person par ON par.pin = pa.ppin
   WHERE CASE WHEN par.pin IS NOT NULL
              THEN pa.date_of_birth < par.date_of_birth + interval '12 years'
              ELSE extract(year FROM pa.date_of_birth)::int - pa.pyear < 12 END
  UNION ALL
  SELECT 'active_over_120', province_code, pin, issued_at,
         'active and born ' || date_of_birth || ': register the death, or check the date'
    FROM person
   WHERE ($1::text IS NULL OR province_code = $1) AND status = 'active'
     AND date_of_birth < $3::date - interval '120 years'
  UNION ALL
  SELECT 'late_registration', province_code, pin, issued_at,
         'registered ' || (registered_on - date_of_birth) || ' days after birth'
    FROM person
   WHERE ($1::text IS NULL OR province_code = $1) AND registered_on - date_of_birth > 60
)
SELECT kind, province_code AS province, count(*) AS n,
       (array_agg(jsonb_build_object('pins', jsonb_build_array(pin), 'detail', detail)
                  ORDER BY issued_at DESC, pin))[1:$2] AS examples
  FROM found GROUP BY kind, province_code ORDER BY kind, province_code
"""

# Pairs of active persons matching the duplicate rule (person_duplicates(), migration 0042),
# except pairs an override named: the later PIN's pin.duplicate_override lists the other.
DUPLICATE_FINDINGS = """
WITH pairs AS (
  SELECT a.province_code, a.pin AS a, b.pin AS b, greatest(a.issued_at, b.issued_at) AS issued_at
    FROM person a JOIN person b
      ON b.name_folded = a.name_folded AND b.date_of_birth = a.date_of_birth
     AND b.sex = a.sex AND b.pin > a.pin
   WHERE a.status = 'active' AND b.status = 'active'
     AND ($1::text IS NULL OR a.province_code = $1 OR b.province_code = $1)
     AND CASE WHEN a.mother_pin IS NOT NULL AND b.mother_pin IS NOT NULL
                THEN a.mother_pin = b.mother_pin
              WHEN a.mother_name_folded IS NOT NULL AND b.mother_name_folded IS NOT NULL
                THEN a.mother_name_folded = b.mother_name_folded
              ELSE a.mother_name_folded IS NULL AND b.mother_name_folded IS NULL END
), open AS (
  SELECT * FROM pairs x
   WHERE NOT EXISTS (
     SELECT 1 FROM audit_event e
      WHERE e.action = 'pin.duplicate_override' AND e.pin IN (x.a, x.b)
        AND e.details->'candidates' ?| ARRAY[x.a, x.b]::text[])
)
SELECT 'possible_duplicate' AS kind, province_code AS province, count(*) AS n,
       (array_agg(jsonb_build_object('pins', jsonb_build_array(a, b),
                                     'detail', 'same folded name, birth date, sex and mother')
                  ORDER BY issued_at DESC, a, b))[1:$2] AS examples
  FROM open GROUP BY province_code ORDER BY province_code
"""
