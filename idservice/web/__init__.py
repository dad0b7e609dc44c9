"""The web pages under `/ui`: the officers' application and the auditors' pages (issue 15),
server-rendered, Vietnamese by default.

`routes.py` (login, session, language, static files, the HTML 404), `officer_pages.py` (find a
person, the record, corrections, the PIN notice), `audit_pages.py` (events, a PIN's history,
checkpoint, "Verify now"); `guard.py` (session, role, error pages), `session.py` (the HttpOnly
cookie, CSRF, the purpose remembered for the session), `pages.py` (Jinja2 with autoescape and
i18n, security headers), `i18n.py` (the page's language; the catalogues are
`idservice/i18n.py`), `formats.py`,
`purposes.py`, `correction_forms.py`, `messages.py` (pure); `verification.py` runs
`audit/verify.py` in the service on demand and records the result as an `audit.verify` event.
"""
