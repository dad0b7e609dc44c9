"""Named SQL statements, one module per area; handlers never build SQL themselves."""
