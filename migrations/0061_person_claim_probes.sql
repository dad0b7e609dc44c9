-- Issue 16 goal 1 / issue 12 (speed): person_claim() finds the first free candidate PIN by one
-- primary-key probe per candidate, in order, stopping at the first free one (almost always the
-- first), instead of one set query over all candidates.
--
-- The set query (0012: unnest(candidates) WHERE NOT EXISTS (person ...)) is planned by
-- PL/pgSQL once per connection and then kept as a generic plan. Planned while `person` was
-- small or not yet analysed (a new cluster, the first minutes of a bench), that plan is a hash
-- anti join over a sequential scan of the whole `person` table: measured under bench load
-- (auto_explain) at 595-670 blocks and 1.0-1.4 ms per call at only 5,300-6,000 persons, and
-- growing with every person issued, until an autoanalyze replaces the plan. A probe
-- `pin = $1` on the primary key has one plan whatever the statistics say.
-- Behaviour unchanged: the first candidate (in the caller's order) not taken, or none.

CREATE OR REPLACE FUNCTION person_claim(p_prefix text, p_candidates integer[],
                                        p_block_size integer, p_row person_row)
RETURNS TABLE (pin text, issued_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  v_candidate integer;
  v_serial integer;
BEGIN
  FOREACH v_candidate IN ARRAY coalesce(p_candidates, '{}') LOOP
    PERFORM 1 FROM person x WHERE x.pin = make_pin(p_prefix, v_candidate);
    IF NOT FOUND THEN
      v_serial := v_candidate;
      EXIT;
    END IF;
  END LOOP;
  IF v_serial IS NOT NULL THEN
    RETURN QUERY SELECT c.pin, c.issued_at
                   FROM person_insert(ARRAY[p_prefix], ARRAY[v_serial], ARRAY[p_row],
                                      p_block_size) c;
  END IF;
END
$$;
