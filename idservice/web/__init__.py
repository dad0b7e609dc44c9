"""The auditors' web UI (server-rendered pages under `/ui`, routes in `idservice/web/routes.py`).

`pages.py` renders Jinja2 templates (autoescaped) with the security headers; `session.py` is
the HttpOnly session cookie and its CSRF token; `verification.py` runs `audit/verify.py` in the
service on demand and records the result as an `audit.verify` event.
"""
