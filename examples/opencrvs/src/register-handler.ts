/*
 * The REGISTER action confirmation handler for births: asks idservice for the child's PIN.
 *
 * OpenCRVS core posts the EventDocument to `/trigger/events/birth/actions/REGISTER` and reads
 * the answer (core events/src/router/event/actions/actionConfirmationRequest.ts):
 * 200 accepts the action, merging `registrationNumber` and `declaration` into it; 400 rejects
 * it; anything else is an unexpected failure that leaves the action for a later retry.
 * idservice is idempotent on the event id, so a retry never issues a second PIN.
 */
import * as Hapi from '@hapi/hapi'
import { IdserviceClient, configFromEnv } from './idservice-client'

export function idserviceBirthRegisterHandler(
  client: IdserviceClient = new IdserviceClient(configFromEnv()),
  onRegistered?: (
    request: Hapi.Request,
    registrationNumber: string
  ) => Promise<void>
) {
  return async (request: Hapi.Request, h: Hapi.ResponseToolkit) => {
    let result
    try {
      result = await client.register(request.payload)
    } catch (error) {
      request.log(['error', 'idservice'], `idservice not reached: ${error}`)
      return h.response({ reason: 'National ID service unreachable; retry' }).code(500)
    }
    if (result.status === 200 && result.body.registrationNumber) {
      if (onRegistered) {
        await onRegistered(request, result.body.registrationNumber)
      }
      return h
        .response({
          registrationNumber: result.body.registrationNumber,
          declaration: result.body.declaration
        })
        .code(200)
    }
    if (result.status === 400) {
      // The registration as declared cannot get a PIN: the registrar sees the reason.
      return h.response({ reason: result.body.reason ?? 'Refused by idservice' }).code(400)
    }
    // 401/403: this configuration's idservice client is not set up; 5xx: idservice is down.
    // Not the record's fault: no rejection, OpenCRVS reports a failure and can retry.
    request.log(['error', 'idservice'], `idservice answered ${result.status}`)
    return h.response({ reason: `National ID service answered ${result.status}` }).code(500)
  }
}
