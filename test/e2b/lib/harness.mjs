// Shared helpers of the E2B SDK compatibility suite. The suite runs in three
// connection modes; cmd/envd/e2b_test.go sets the environment of the first
// two, cmd/nestbox/e2b_test.go of the third:
//
//   debug:  E2B_DEBUG=true. Sandbox.create() returns a fake sandbox that talks
//           to http://localhost:49983 with no access token (envd has none).
//   secure: E2B_API_URL points at a stub control plane, E2B_SANDBOX_URL at
//           envd, E2B_API_KEY is set. The Go test has POSTed /init with the
//           access token (NESTBOX_ENVD_TOKEN) and the global env var
//           INIT_ENV_NAME=INIT_ENV_VALUE, so the SDK must send X-Access-Token.
//   platform: E2B_API_URL and E2B_SANDBOX_URL point at a real `nestbox up`;
//           Sandbox.create() makes a real sandbox (gVisor, the base
//           template), created with the env var INIT_ENV_NAME, and all envd
//           traffic goes through the control plane's routing.
//
// This file lives outside envd/ so that the test runner never mistakes it
// for a test file.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'

import { Sandbox } from 'e2b'

export const MODE = process.env.NESTBOX_E2B_MODE ?? (process.env.E2B_DEBUG === 'true' ? 'debug' : 'secure')
export const SECURE = MODE === 'secure'
export const DEBUG = MODE === 'debug'
export const PLATFORM = MODE === 'platform'
// SIGNED: the sandbox has an access token, so URLs are signed.
export const SIGNED = SECURE || PLATFORM

// Base URL of envd as the SDK sees it.
export const ENVD_URL = SECURE ? process.env.E2B_SANDBOX_URL : 'http://localhost:49983'

// envd's access token (secure mode only); tests use it for raw requests.
export const ACCESS_TOKEN = process.env.NESTBOX_ENVD_TOKEN ?? ''

// The global env var the Go test passes to POST /init in secure mode.
export const INIT_ENV_NAME = 'NESTBOX_INIT_VAR'
export const INIT_ENV_VALUE = 'set-by-init'

// Sandbox IDs the stub control plane knows (see cmd/envd/e2b_test.go).
export const SANDBOX_ID = 'sbx1'
export const BAD_TOKEN_SANDBOX_ID = 'sbx-badtoken'

if (!['debug', 'secure', 'platform'].includes(MODE)) throw new Error(`unknown NESTBOX_E2B_MODE ${MODE}`)
if (PLATFORM && (!process.env.E2B_API_URL || !process.env.E2B_SANDBOX_URL)) {
  throw new Error('platform mode needs E2B_API_URL and E2B_SANDBOX_URL (run through `go test -run TestE2BSDKPlatform ./cmd/nestbox/`)')
}
if (SECURE && (!ENVD_URL || !ACCESS_TOKEN || !process.env.E2B_API_URL)) {
  throw new Error('secure mode needs E2B_API_URL, E2B_SANDBOX_URL and NESTBOX_ENVD_TOKEN (run through `go test -run TestE2BSDK ./cmd/envd/`)')
}

// The users every scenario runs as: the default user (the SDK sends no user
// at all, so envd must pick `user`) and root (the SDK sends
// `Authorization: Basic cm9vdDo=` on RPCs and `username=root` on /files).
export const USERS = [
  { name: 'user', home: '/home/user', opts: {} },
  { name: 'root', home: '/root', opts: { user: 'root' } },
]

/** Creates (or, in debug mode, fakes) a sandbox through the SDK's public API. */
export async function openSandbox() {
  if (PLATFORM) {
    const sbx = await Sandbox.create({ envs: { [INIT_ENV_NAME]: INIT_ENV_VALUE } })
    assert.ok(sbx.envdAccessToken, 'a sandbox of the platform must be secured')
    return sbx
  }
  const sbx = await Sandbox.create()
  if (SECURE) {
    assert.equal(sbx.sandboxId, SANDBOX_ID)
    assert.equal(sbx.envdAccessToken, ACCESS_TOKEN, 'the SDK must use the token the control plane returned')
  } else {
    assert.equal(sbx.sandboxId, 'debug_sandbox_id')
  }
  return sbx
}

export function randomName(prefix = 'e2bt') {
  return `${prefix}-${randomBytes(5).toString('hex')}`
}

/**
 * Returns a fresh path <home>/e2bt-<random> for one test and removes it (as
 * root, so it works whoever wrote into it) when the test ends. The directory
 * itself is not created.
 */
export function scratchPath(t, sbx, home) {
  const dir = `${home}/${randomName()}`
  t.after(async () => {
    await sbx.files.remove(dir, { user: 'root' }).catch(() => {})
  })
  return dir
}

/** Polls cond() every 50 ms until it is truthy or timeoutMs passes. */
export async function waitFor(cond, timeoutMs, describe) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await cond()
    if (v) return v
    if (Date.now() > deadline) {
      assert.fail(`timed out after ${timeoutMs} ms waiting for ${typeof describe === 'function' ? describe() : describe}`)
    }
    await sleep(50)
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export const encode = (s) => new TextEncoder().encode(s)

/** Kills pid through the SDK, ignoring errors; for cleanup hooks. */
export async function killQuietly(sbx, pid) {
  if (pid) await sbx.commands.kill(pid).catch(() => {})
}

/** Raw HTTP helper for requests the SDK does not make itself. */
export async function rawFetch(path, { token, method = 'GET', headers = {}, body } = {}) {
  const h = { ...headers }
  if (token) h['X-Access-Token'] = token
  const res = await fetch(new URL(path, ENVD_URL), { method, headers: h, body })
  const text = await res.text()
  return { status: res.status, headers: res.headers, text }
}

/** Parses JSON, failing the test with the raw text when it is not JSON. */
export function parseJSON(text, what) {
  try {
    return JSON.parse(text)
  } catch {
    assert.fail(`${what}: not JSON: ${JSON.stringify(text.slice(0, 300))}`)
  }
}
