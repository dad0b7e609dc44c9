"""Request plumbing shared by the JSON API (`api/`) and the web pages (`web/`): the service
dependency, the caller's principal, the request context for audit events, strict body parsing.
Neither routes nor business rules live here; both route layers import it, never each other."""
