-- The audit log's Merkle tree and signed checkpoints (contract section 5; RFC 9162, C2SP
-- tlog-checkpoint). Integration is not sequencing: after audit_sequence() gives events their
-- index, the integrator (idservice/audit/integrator.py) computes each leaf hash
-- SHA-256(0x00 || JCS(event)) - JCS is RFC 8785 and lives in Python, not SQL - and appends it.
--
-- audit_node       every completed perfect subtree: (level, idx) covers leaves
--                  [idx * 2^level, (idx + 1) * 2^level); level 0 holds the leaf hashes. A proof
--                  for any tree size up to the integrated one is O(log n) lookups.
-- audit_tree       one row per integration step: tree size, root and the O(log n) frontier.
-- audit_checkpoint the signed notes, in increasing tree size.
--
-- All three are append-only for every role (ENABLE ALWAYS triggers, as in 0003). The service
-- role has no INSERT on them: it appends through two SECURITY DEFINER functions that only ever
-- extend the tree contiguously from its current size and only accept a checkpoint whose tree
-- size and root are an integrated state, so it can never rewrite integrated history.

CREATE TABLE audit_node (
  level  smallint NOT NULL CHECK (level BETWEEN 0 AND 62),
  idx    bigint NOT NULL CHECK (idx >= 0),
  hash   bytea NOT NULL CHECK (length(hash) = 32),
  PRIMARY KEY (level, idx)
);

CREATE TABLE audit_tree (
  size           bigint PRIMARY KEY CHECK (size >= 0),
  root           bytea NOT NULL CHECK (length(root) = 32),
  frontier       bytea[] NOT NULL,
  integrated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO audit_tree (size, root, frontier) VALUES (0, sha256(''::bytea), '{}');

CREATE TABLE audit_checkpoint (
  tree_size   bigint PRIMARY KEY REFERENCES audit_tree (size),
  note        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TRIGGER audit_node_append_only BEFORE UPDATE OR DELETE ON audit_node
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_node_no_truncate BEFORE TRUNCATE ON audit_node
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_tree_append_only BEFORE UPDATE OR DELETE ON audit_tree
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_tree_no_truncate BEFORE TRUNCATE ON audit_tree
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
ALTER TABLE audit_node ENABLE ALWAYS TRIGGER audit_node_append_only;
ALTER TABLE audit_node ENABLE ALWAYS TRIGGER audit_node_no_truncate;
ALTER TABLE audit_tree ENABLE ALWAYS TRIGGER audit_tree_append_only;
ALTER TABLE audit_tree ENABLE ALWAYS TRIGGER audit_tree_no_truncate;
ALTER TABLE audit_checkpoint ENABLE ALWAYS TRIGGER audit_checkpoint_append_only;
ALTER TABLE audit_checkpoint ENABLE ALWAYS TRIGGER audit_checkpoint_no_truncate;

-- Extend the tree from `old_size` (must be the current size) to `new_size`: the new leaves'
-- hashes and every perfect subtree they complete, the new root and frontier. Refused unless
-- the leaves are exactly old_size .. new_size - 1 and all of them are sequenced events.
CREATE FUNCTION audit_tree_append(old_size bigint, new_size bigint, new_root bytea,
                                  new_frontier bytea[], node_levels smallint[],
                                  node_idxs bigint[], node_hashes bytea[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  current_size bigint;
  leaves bigint;
  low bigint;
  high bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(7305118203);
  SELECT max(size) INTO current_size FROM audit_tree;
  IF old_size <> current_size THEN
    RAISE EXCEPTION 'audit tree has size %, not %', current_size, old_size
      USING ERRCODE = 'serialization_failure';
  END IF;
  IF new_size <= old_size
     OR NOT EXISTS (SELECT 1 FROM audit_log WHERE index = new_size - 1) THEN
    RAISE EXCEPTION 'cannot extend the audit tree from % to %', old_size, new_size
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  SELECT count(*), min(i), max(i) INTO leaves, low, high
    FROM unnest(node_levels, node_idxs) AS u(l, i) WHERE l = 0;
  IF leaves <> new_size - old_size OR low <> old_size OR high <> new_size - 1 THEN
    RAISE EXCEPTION 'leaf hashes must be exactly % .. %', old_size, new_size - 1
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  INSERT INTO audit_node (level, idx, hash)
    SELECT * FROM unnest(node_levels, node_idxs, node_hashes);
  INSERT INTO audit_tree (size, root, frontier) VALUES (new_size, new_root, new_frontier);
END
$$;
REVOKE ALL ON FUNCTION audit_tree_append(bigint, bigint, bytea, bytea[], smallint[], bigint[],
                                         bytea[]) FROM PUBLIC;

-- Record a signed checkpoint of an integrated tree state, newer than the last checkpoint.
-- The note's size and root lines must be that state's (the signature is checked by verifiers).
CREATE FUNCTION audit_checkpoint_add(p_tree_size bigint, p_note text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  state_root bytea;
BEGIN
  PERFORM pg_advisory_xact_lock(7305118203);
  SELECT root INTO state_root FROM audit_tree WHERE size = p_tree_size;
  IF state_root IS NULL THEN
    RAISE EXCEPTION 'no integrated tree of size %', p_tree_size
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF p_tree_size <= (SELECT coalesce(max(tree_size), -1) FROM audit_checkpoint) THEN
    RAISE EXCEPTION 'checkpoints only move forward' USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF split_part(p_note, E'\n', 2) <> p_tree_size::text
     OR split_part(p_note, E'\n', 3) <> encode(state_root, 'base64') THEN
    RAISE EXCEPTION 'checkpoint note does not state tree % and its root', p_tree_size
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  INSERT INTO audit_checkpoint (tree_size, note) VALUES (p_tree_size, p_note);
END
$$;
REVOKE ALL ON FUNCTION audit_checkpoint_add(bigint, text) FROM PUBLIC;

GRANT SELECT ON audit_node, audit_tree, audit_checkpoint TO idservice_service, idservice_auditor;
GRANT EXECUTE ON FUNCTION audit_tree_append(bigint, bigint, bytea, bytea[], smallint[], bigint[],
                                            bytea[]) TO idservice_service;
GRANT EXECUTE ON FUNCTION audit_checkpoint_add(bigint, text) TO idservice_service;

-- Auditor searches (GET /v1/audit/events?pin=&actor=).
CREATE INDEX audit_event_pin ON audit_event (pin) WHERE pin IS NOT NULL;
CREATE INDEX audit_event_actor ON audit_event (actor_type, actor_id);
CREATE INDEX audit_event_action ON audit_event (action);
