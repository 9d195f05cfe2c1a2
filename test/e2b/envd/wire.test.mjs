// Wire details the SDK relies on but cannot be made to exercise quickly:
// keepalive events on quiet streams. The SDK asks for one every 50 s
// (Keepalive-Ping-Interval: 50) so that proxies do not cut idle streams;
// here we ask for one a second, with the SDK's headers, over raw Connect.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'

import { ACCESS_TOKEN, ENVD_URL, MODE, PLATFORM, SECURE, killQuietly, openSandbox, scratchPath } from '../lib/harness.mjs'

function envelope(msg) {
  const json = Buffer.from(JSON.stringify(msg))
  const buf = Buffer.concat([Buffer.alloc(5), json])
  buf.writeUInt32BE(json.length, 1)
  return buf
}

// Calls a server-streaming RPC and collects its frames for up to ms
// milliseconds (or until the stream ends). Returns the parsed messages; the
// end-of-stream frame comes back as {endStream: <json>}.
async function streamFor(path, msg, ms, extraHeaders = {}) {
  const ac = new AbortController()
  const headers = {
    'Content-Type': 'application/connect+json',
    'Connect-Protocol-Version': '1',
    'Keepalive-Ping-Interval': '1',
    ...extraHeaders,
  }
  if (SECURE) headers['X-Access-Token'] = ACCESS_TOKEN
  const res = await fetch(new URL(path, ENVD_URL), { method: 'POST', headers, body: envelope(msg), signal: ac.signal })
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^application\/connect\+json/)
  const timer = setTimeout(() => ac.abort(), ms)
  const frames = []
  let buf = Buffer.alloc(0)
  try {
    for await (const chunk of res.body) {
      buf = Buffer.concat([buf, Buffer.from(chunk)])
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        const n = buf.readUInt32BE(1)
        const payload = JSON.parse(buf.subarray(5, 5 + n).toString())
        frames.push(buf[0] & 2 ? { endStream: payload } : payload)
        buf = buf.subarray(5 + n)
      }
    }
  } catch (err) {
    if (err.name !== 'AbortError') throw err
  } finally {
    clearTimeout(timer)
  }
  return frames
}

// The streams take seconds each, so the tests run concurrently.
// Raw requests go straight to envd: not in platform mode, where envd is
// reached through the control plane's routing (the SDK suites cover that).
describe(`wire [${MODE}]`, { concurrency: true, skip: PLATFORM && 'raw envd requests: debug and secure modes only' }, () => {
  let sbx
  before(async () => {
    sbx = await openSandbox()
  })
  after(async () => {
    await sbx?.kill()
  })

  it('Start: start event first, keepalives while quiet, then data, end and a clean end-of-stream', async () => {
    const frames = await streamFor('/process.Process/Start', { process: { cmd: '/bin/bash', args: ['-l', '-c', 'sleep 2.5; echo done'] }, stdin: false }, 10_000)
    const kinds = frames.map((f) => (f.endStream ? 'endStream' : Object.keys(f.event ?? {})[0]))
    assert.equal(kinds[0], 'start', `frames ${JSON.stringify(frames)}`)
    assert.ok(kinds.filter((k) => k === 'keepalive').length >= 1, `want keepalives in ${JSON.stringify(kinds)}`)
    assert.deepEqual(kinds.filter((k) => k !== 'keepalive').slice(1), ['data', 'end', 'endStream'])
    assert.equal(Buffer.from(frames.find((f) => f.event?.data).event.data.stdout, 'base64').toString(), 'done\n')
    assert.deepEqual(frames.at(-1).endStream, {})
  })

  it('Connect: keepalives on a quiet process', async () => {
    const h = await sbx.commands.run('sleep 30', { background: true })
    try {
      const frames = await streamFor('/process.Process/Connect', { process: { pid: h.pid } }, 2500)
      assert.deepEqual(frames[0], { event: { start: { pid: h.pid } } })
      assert.ok(frames.filter((f) => f.event?.keepalive).length >= 1, `want keepalives in ${JSON.stringify(frames)}`)
    } finally {
      await killQuietly(sbx, h.pid)
    }
  })

  it('WatchDir: start event first, keepalives while quiet', async (t) => {
    const dir = scratchPath(t, sbx, '/home/user')
    await sbx.files.makeDir(dir)
    const frames = await streamFor('/filesystem.Filesystem/WatchDir', { path: dir }, 2500)
    assert.deepEqual(frames[0], { start: {} })
    assert.ok(frames.filter((f) => f.keepalive).length >= 1, `want keepalives in ${JSON.stringify(frames)}`)
  })

  it('GET /health is 204 with no body', async () => {
    const res = await fetch(new URL('/health', ENVD_URL))
    assert.equal(res.status, 204)
    assert.equal(await res.text(), '')
  })

  it('an unknown pid on Connect ends the stream with not_found', async () => {
    const frames = await streamFor('/process.Process/Connect', { process: { pid: 999999 } }, 5000)
    const end = frames.at(-1)?.endStream
    assert.equal(end?.error?.code, 'not_found', `frames ${JSON.stringify(frames)}`)
  })
})
