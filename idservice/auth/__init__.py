"""Authentication (machine clients, officers) and authorisation (roles, jurisdiction)."""
