"""The citizen access report (Data Tracker, contract section 11; Estonia's Andmejälgija API).

- `usage.py`: what a usage is (the access kinds and their plain-Vietnamese descriptions, as
  data) and how an audit event becomes one; pure.
- `rules.py`: who may ask about whom (the subject, or a parent named on a minor's record) and
  the `X-Road-UserId` / `userCode` formats; pure.
- `service.py`: findUsage, usagePeriod, heartbeat and proofs over the audit log, each report
  itself audited (`citizen.report`).
- `sessions.py`: the citizen's page sessions a portal opens (single-use link, then a cookie).
- `verifier.py`: a standalone proof verifier (standard library + cryptography only) that a
  portal or a citizen's app can copy; `idservice audit prove` runs it.
"""
