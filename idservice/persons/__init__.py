"""Person records: issuance, verification, reads, searches and corrections (contract section 4)."""
