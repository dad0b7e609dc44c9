"""HTTP layer: routes per area; no SQL and no business rules here."""
