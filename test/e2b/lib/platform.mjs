// Shared helpers of the platform suite (platform/*.test.mjs): E2B's
// unmodified JS SDK against a real Nestbox control plane (`nestbox up`).
//
// Environment (the Go runner sets it; set it yourself to run by hand):
//
//   E2B_API_URL      the control plane's URL, e.g. http://127.0.0.1:18080
//   E2B_SANDBOX_URL  the same URL: one port serves the API and sandbox
//                    traffic, routed by the E2b-Sandbox-Id header
//   E2B_API_KEY      the API key in its E2B form, e2b_<40 hex>
//   E2B_DOMAIN       the platform's --domain (getHost() builds names from it)
//   NESTBOX_E2B_SDK  which SDK to load: `e2b` (2.51.0, the default) or
//                    `e2b-245` (2.45.0, installed through an npm alias)
//
// This file lives outside platform/ so that the test runner never mistakes it
// for a test file.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import http from 'node:http'

export const SDK_NAME = process.env.NESTBOX_E2B_SDK ?? 'e2b'
if (!['e2b', 'e2b-245'].includes(SDK_NAME)) throw new Error(`NESTBOX_E2B_SDK must be e2b or e2b-245, not ${SDK_NAME}`)

/** The SDK module: Sandbox, CommandExitError, SandboxNotFoundError, ... */
export const sdk = await import(SDK_NAME)
export const { Sandbox } = sdk

/**
 * The version of the loaded SDK, from its package.json (e.g. "2.45.0"). For
 * everything the suite uses, 2.45.0 and 2.51.0 have the same public API; they
 * differ on the wire (2.45 creates with POST /sandboxes and always sends
 * timeout 300 on create and connect, 2.51 uses the /v2 endpoints and omits
 * the timeout unless given), which the server has to handle. Tests that need
 * to tell them apart compare SDK_VERSION.
 */
export const SDK_VERSION = JSON.parse(
  readFileSync(new URL(`../node_modules/${SDK_NAME}/package.json`, import.meta.url), 'utf8'),
).version

/** A label for describe() titles, e.g. "[e2b 2.51.0]". */
export const SDK_LABEL = `[${SDK_NAME} ${SDK_VERSION}]`

for (const name of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY', 'E2B_DOMAIN']) {
  if (!process.env[name]) {
    throw new Error(`${name} is not set: the platform suite needs a running \`nestbox up\` (see test/e2b/README.md)`)
  }
}

export const API_URL = new URL(process.env.E2B_API_URL)
export const DOMAIN = process.env.E2B_DOMAIN
export const API_KEY = process.env.E2B_API_KEY

/** A random tag shared by every sandbox this process creates (metadata `run`). */
export const RUN_ID = randomName('run')

export function randomName(prefix = 'e2bp') {
  return `${prefix}-${randomBytes(5).toString('hex')}`
}

/**
 * A sandbox ID shaped like the platform's (20 characters of [a-z0-9]) that
 * belongs to no sandbox.
 */
export function unknownSandboxId() {
  return randomHex(10)
}

/** n random bytes as lowercase hex. */
export function randomHex(n) {
  return randomBytes(n).toString('hex')
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export const encode = (s) => new TextEncoder().encode(s)

/** Polls cond() every 100 ms until it is truthy or timeoutMs passes. */
export async function waitFor(cond, timeoutMs, describe) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await cond()
    if (v) return v
    if (Date.now() > deadline) {
      assert.fail(`timed out after ${timeoutMs} ms waiting for ${typeof describe === 'function' ? describe() : describe}`)
    }
    await sleep(100)
  }
}

/**
 * Creates a sandbox of the default template (`base`) and kills it when the
 * test t ends. Every sandbox carries
 * the metadata suite=nestbox and run=RUN_ID, plus opts.metadata.
 */
export async function createSandbox(t, opts = {}) {
  const sbx = await suiteSandbox(opts)
  t.after(() => killQuietly(sbx.sandboxId))
  return sbx
}

/**
 * Creates a sandbox for a whole describe(); the caller kills it in after().
 */
export function suiteSandbox(opts = {}) {
  return Sandbox.create({
    requestTimeoutMs: 120_000,
    ...opts,
    metadata: { suite: 'nestbox', run: RUN_ID, ...opts.metadata },
  })
}

/** Kills a sandbox by ID, ignoring errors; for cleanup hooks. */
export async function killQuietly(sandboxId) {
  if (sandboxId) await Sandbox.kill(sandboxId).catch(() => {})
}

/**
 * Requests path on a sandbox port through host routing: the TCP connection
 * goes to the control plane's address, the Host header is sbx.getHost(port)
 * (`<port>-<id>.<domain>`, which does not resolve here). No E2B routing
 * headers are sent. Redirects are not followed.
 */
export function hostRequest(host, path, { method = 'GET', headers = {}, timeoutMs = 15_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: API_URL.hostname,
        port: Number(API_URL.port || 80),
        method,
        path,
        headers: { ...headers, Host: host },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }))
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`${method} ${host}${path}: no answer within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end()
  })
}

/** Parses JSON, failing the test with the raw text when it is not JSON. */
export function parseJSON(text, what) {
  try {
    return JSON.parse(text)
  } catch {
    assert.fail(`${what}: not JSON: ${JSON.stringify(String(text).slice(0, 300))}`)
  }
}

/** Collects every item of an SDK paginator, and how many pages it took. */
export async function drain(paginator, maxPages = 50) {
  const items = []
  const pageSizes = []
  while (paginator.hasNext) {
    assert.ok(pageSizes.length < maxPages, `more than ${maxPages} pages: the paginator does not end`)
    const page = await paginator.nextItems()
    pageSizes.push(page.length)
    items.push(...page)
  }
  return { items, pageSizes }
}

/** Asserts that promise rejects within ms, and returns the error. */
export async function rejectsWithin(promise, ms, what) {
  const PENDING = Symbol('pending')
  let timer
  const outcome = await Promise.race([
    promise.then(
      (value) => ({ value }),
      (err) => ({ err }),
    ),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(PENDING), ms)
    }),
  ])
  clearTimeout(timer)
  if (outcome === PENDING) assert.fail(`${what}: still pending after ${ms} ms`)
  if (!('err' in outcome)) assert.fail(`${what}: resolved with ${JSON.stringify(outcome.value)?.slice(0, 300)} instead of rejecting`)
  return outcome.err
}
