-- OSIA Data Access (contract 10): a client with role `reader` reads under the purpose it was
-- registered with (`idservice clients add --purpose`), recorded in every event of its reads.
-- NULL: no purpose registered; such a reader is refused (403).
ALTER TABLE client ADD COLUMN purpose text
  CHECK (purpose IS NULL OR length(purpose) BETWEEN 1 AND 500);
