"""OpenCRVS REGISTER confirmation (contract 10): a birth event -> a PIN, idempotent on the
event id, issued by the same `issuance.issue` as `POST /v1/pins`.

The registration: province = the client's jurisdiction (a client for every province, `*`,
cannot say which province registers: refused), authority = the REGISTER action's
`createdAtLocation` (the registration office), number = the event id, date = the REGISTER
action's date. The event id is claimed with that registration (`claims`, scope: the province),
so a REGISTER retried later, from another office, replays the first attempt's registration
(same PIN) instead of issuing a second PIN for the same birth.
"""

from __future__ import annotations

from dataclasses import dataclass

from idservice.audit.events import RequestContext
from idservice.auth.policy import Action, authorize
from idservice.auth.principal import Principal
from idservice.errors import Forbidden
from idservice.integrations import claims
from idservice.integrations.opencrvs import events
from idservice.integrations.opencrvs.errors import OpenCrvsRefusal
from idservice.integrations.opencrvs.mapping import to_issue_body
from idservice.persons.context import PersonsContext
from idservice.persons.issuance import IssueOutcome
from idservice.persons.models import IssueRequest

__all__ = ["Confirmation", "confirm_registration", "registration_request"]


@dataclass(frozen=True, slots=True)
class Confirmation:
    registration_number: str
    outcome: IssueOutcome

    def body(self) -> dict[str, object]:
        """What OpenCRVS core merges into the accepted REGISTER action."""
        return {"registrationNumber": self.registration_number,
                "declaration": {"child.nid": self.outcome.pin}}


def registration_request(principal: Principal, body: object) -> tuple[str, str, dict[str, object]]:
    """(event id, registration number, the `POST /v1/pins` body) for an EventDocument."""
    authorize(principal, Action.PIN_ISSUE)
    if principal.jurisdiction == "*":
        raise Forbidden("an OpenCRVS client must be registered for one province (its "
                        "jurisdiction is the registering province), not *")
    event = events.event_document(body)
    register = events.register_action(event)
    location = register.get("createdAtLocation")
    if not isinstance(location, str) or not location:
        raise OpenCrvsRefusal("the REGISTER action has no createdAtLocation: the registration "
                              "office is required")
    declaration = events.declaration(event, register)
    issue_body = to_issue_body(declaration, province_code=principal.jurisdiction,
                               authority=location, number=event["id"],
                               registered_on=events.registered_on(register))
    return event["id"], event["trackingId"], issue_body


async def confirm_registration(ctx: PersonsContext, principal: Principal,
                               rctx: RequestContext, event_id: str, registration_number: str,
                               req: IssueRequest) -> Confirmation:
    held = await claims.claim(ctx, "opencrvs", req.registration.province_code, event_id, req)
    if not held.claimed:  # a retry: the registration of the first attempt
        req = req.model_copy(update={"registration": req.registration.model_copy(update={
            "authority": held.authority, "number": held.number,
            "registered_on": held.registered_on})})
    outcome = await claims.issue_claimed(ctx, principal, rctx, held, req)
    return Confirmation(registration_number, outcome)
