-- The quality report (contract 9; issue 11 item 3) reads through the auditor role: it may read
-- person records (whole rows: the findings look at parents inside `record`) and write its own
-- `quality.report` event through the one writer of events (0013), as the administrator does
-- (0016). It still cannot change any record or event.
GRANT SELECT ON person TO idservice_auditor;
GRANT INSERT (actor_type, actor_id, action, pin, purpose, outcome, request_id, source_ip,
              details) ON audit_event TO idservice_auditor;
GRANT EXECUTE ON FUNCTION audit_write(text, text, text, text, text[], text[], text[], text[],
                                      text[]) TO idservice_auditor;
