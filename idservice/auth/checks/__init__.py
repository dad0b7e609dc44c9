"""Officer login checks (contract 3.1), one module each, run in a fixed order by
`auth/validator.py`. Each raises one `auth.login_errors` type, never returns a verdict."""
