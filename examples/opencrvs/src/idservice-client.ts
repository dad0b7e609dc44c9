/*
 * idservice client for an OpenCRVS country configuration (v1.9+).
 *
 * Holds the client's private key, signs private_key_jwt client assertions (RFC 7523) with it,
 * keeps the access token until shortly before it expires, and forwards the EventDocument of a
 * birth REGISTER action to idservice's `POST /integrations/opencrvs/v1/register`.
 * Node's own crypto and fetch only (Node 20+): no dependency to add to the country
 * configuration. See ../README.md.
 */
import {
  KeyObject,
  constants,
  createPrivateKey,
  randomUUID,
  sign
} from 'node:crypto'
import { readFileSync } from 'node:fs'

export interface IdserviceConfig {
  /** https://id.example.gov.vn (no path) */
  url: string
  /** the id idservice registered this configuration under (`clients add --id`) */
  clientId: string
  privateKey: KeyObject
  /** the `aud` of assertions: idservice's token endpoint URL */
  tokenUrl: string
  /** per request to idservice, token and registration each */
  timeoutMs: number
}

export interface RegisterResult {
  /** 200: registered; 400: refused (reject the action); anything else: retry later */
  status: number
  body: { registrationNumber?: string; declaration?: Record<string, string>; reason?: string }
}

const MAX_ANSWER_BYTES = 64 * 1024

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name]
  if (!value) {
    throw new Error(`${name} must be set (see examples/opencrvs/README.md)`)
  }
  return value
}

/** The configuration from the environment; throws at start-up when anything is missing. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): IdserviceConfig {
  const url = required(env, 'IDSERVICE_URL').replace(/\/+$/, '')
  if (!url.startsWith('https://') && env.IDSERVICE_ALLOW_HTTP !== 'true') {
    throw new Error('IDSERVICE_URL must be https:// (IDSERVICE_ALLOW_HTTP=true for a test)')
  }
  const pem = env.IDSERVICE_CLIENT_KEY_FILE
    ? readFileSync(env.IDSERVICE_CLIENT_KEY_FILE, 'utf8')
    : required(env, 'IDSERVICE_CLIENT_KEY')
  return {
    url,
    clientId: required(env, 'IDSERVICE_CLIENT_ID'),
    privateKey: createPrivateKey(pem),
    tokenUrl: env.IDSERVICE_TOKEN_URL ?? `${url}/v1/auth/client-token`,
    timeoutMs: Number(env.IDSERVICE_TIMEOUT_MS ?? '20000')
  }
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url')
}

function algorithm(key: KeyObject): { alg: string; hash: string } {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve
    const byCurve: Record<string, { alg: string; hash: string }> = {
      prime256v1: { alg: 'ES256', hash: 'sha256' },
      secp384r1: { alg: 'ES384', hash: 'sha384' },
      secp521r1: { alg: 'ES512', hash: 'sha512' }
    }
    if (curve && byCurve[curve]) return byCurve[curve]
  }
  if (key.asymmetricKeyType === 'rsa') return { alg: 'PS256', hash: 'sha256' }
  throw new Error('the idservice client key must be EC (P-256/384/521) or RSA')
}

/** A private_key_jwt assertion: iss = sub = client id, aud = token URL, 2 min, unique jti. */
export function clientAssertion(cfg: IdserviceConfig, now: number = Date.now()): string {
  const { alg, hash } = algorithm(cfg.privateKey)
  const iat = Math.floor(now / 1000)
  const header = { alg, typ: 'JWT' }
  const claims = {
    iss: cfg.clientId,
    sub: cfg.clientId,
    aud: cfg.tokenUrl,
    iat,
    exp: iat + 120,
    jti: randomUUID()
  }
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`
  const signature = alg.startsWith('ES')
    ? sign(hash, Buffer.from(input), { key: cfg.privateKey, dsaEncoding: 'ieee-p1363' })
    : sign(hash, Buffer.from(input), {
        key: cfg.privateKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: 32
      })
  return `${input}.${b64url(signature)}`
}

/** POST with a timeout, no redirects, and a cap on the answer's size. */
async function post(
  url: string,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number
): Promise<{ status: number; json: any }> {
  const response = await fetch(url, {
    method: 'POST',
    body,
    headers,
    redirect: 'error',
    signal: AbortSignal.timeout(timeoutMs)
  })
  const text = await response.text()
  if (Buffer.byteLength(text) > MAX_ANSWER_BYTES) {
    throw new Error(`idservice answer larger than ${MAX_ANSWER_BYTES} bytes`)
  }
  let json: any = undefined
  try {
    json = text ? JSON.parse(text) : undefined
  } catch {
    json = undefined
  }
  return { status: response.status, json }
}

export class IdserviceClient {
  private token: { value: string; renewAt: number } | undefined

  constructor(private readonly cfg: IdserviceConfig) {}

  private async accessToken(): Promise<string> {
    if (this.token && Date.now() < this.token.renewAt) return this.token.value
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: clientAssertion(this.cfg)
    })
    const { status, json } = await post(
      this.cfg.tokenUrl,
      form.toString(),
      { 'Content-Type': 'application/x-www-form-urlencoded' },
      this.cfg.timeoutMs
    )
    if (status !== 200 || typeof json?.access_token !== 'string') {
      throw new Error(`idservice refused the client token: ${status} ${json?.error ?? ''}`)
    }
    const lifetime = Number(json.expires_in ?? 900)
    this.token = {
      value: json.access_token,
      renewAt: Date.now() + Math.max(0, lifetime - 60) * 1000
    }
    return this.token.value
  }

  /** Forward the EventDocument of a birth REGISTER action (retrying once on a stale token). */
  async register(event: unknown): Promise<RegisterResult> {
    const body = JSON.stringify(event)
    for (let attempt = 0; ; attempt++) {
      const token = await this.accessToken()
      const { status, json } = await post(
        `${this.cfg.url}/integrations/opencrvs/v1/register`,
        body,
        { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        this.cfg.timeoutMs
      )
      if (status === 401 && attempt === 0) {
        this.token = undefined // revoked or expired early: one new token, one retry
        continue
      }
      return { status, body: json ?? {} }
    }
  }
}
