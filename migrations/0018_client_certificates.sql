-- Machine clients keep their whole certificate (contract 7, issue 9 item 5).
--
-- Until now only the public key and the certificate's SHA-256 were kept, so nothing could say
-- when the certificate expires or whether its CA revoked it. `idservice clients add` now stores
-- the certificate, its notAfter and its issuer + serial (as the operator table does, for CRL
-- matching); an expired certificate is refused there. Tokens end at notAfter at the latest, and
-- clients whose certificate chains to IDSERVICE_CLIENT_TRUST_ANCHORS are checked against
-- IDSERVICE_CLIENT_CRLS. Clients registered before this migration have no stored certificate
-- (NULL): they keep working on their key, without those checks, until registered again.
ALTER TABLE client
  ADD COLUMN cert_pem text,
  ADD COLUMN cert_not_after timestamptz,
  ADD COLUMN cert_issuer text,
  ADD COLUMN cert_serial text,
  ADD CONSTRAINT client_certificate_complete CHECK (
    (cert_pem IS NULL) = (cert_not_after IS NULL)
    AND (cert_pem IS NULL) = (cert_issuer IS NULL)
    AND (cert_pem IS NULL) = (cert_serial IS NULL));
