// sandbox.getHost(port): user services inside the sandbox, reached through the
// control plane's port by host name (<port>-<sandboxId>.<domain>). The name
// does not resolve here, so requests go to the control plane's address with
// that Host header (hostRequest).

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'

import { API_URL, DOMAIN, SDK_LABEL, hostRequest, killQuietly, parseJSON, randomName, suiteSandbox, unknownSandboxId, waitFor } from '../lib/platform.mjs'

describe(`getHost ${SDK_LABEL}`, () => {
  let sbx
  let dir
  let server
  before(async () => {
    sbx = await suiteSandbox({ timeoutMs: 180_000 })
    dir = `/home/user/${randomName('www')}`
    await sbx.files.write([
      { path: `${dir}/hello.txt`, data: 'hello from the sandbox\n' },
      { path: `${dir}/sub/inner.txt`, data: 'inner\n' },
    ])
    server = await sbx.commands.run('python3 -m http.server 8000', { background: true, cwd: dir, timeoutMs: 0 })
    // The proxy answers 502 until the server listens.
    await waitFor(
      async () => (await hostRequest(sbx.getHost(8000), '/').catch(() => ({ status: 0 }))).status === 200,
      20_000,
      'python3 -m http.server to answer through the host route',
    )
  })
  after(async () => {
    if (server) await sbx.commands.kill(server.pid).catch(() => {})
    await killQuietly(sbx?.sandboxId)
  })

  it('getHost(port) is <port>-<sandboxId>.<domain>', () => {
    assert.equal(sbx.getHost(8000), `8000-${sbx.sandboxId}.${DOMAIN}`)
  })

  it('GET / through the host route: 200 and the directory listing', async () => {
    const res = await hostRequest(sbx.getHost(8000), '/')
    assert.equal(res.status, 200, res.body)
    assert.match(res.body, /hello\.txt/)
    assert.match(res.body, /sub\//)
    const file = await hostRequest(sbx.getHost(8000), '/hello.txt')
    assert.equal(file.status, 200)
    assert.equal(file.body, 'hello from the sandbox\n')
  })

  it('a directory without its trailing slash: 301 to a Location with no proxy prefix', async () => {
    const res = await hostRequest(sbx.getHost(8000), '/sub')
    assert.equal(res.status, 301, res.body)
    const loc = res.headers.location
    assert.ok(loc, 'Location is set')
    assert.doesNotMatch(loc, /\/proxy\//, `Location ${loc}`)
    // http.server builds it from the request path it saw: the path must reach
    // the sandbox unchanged, so the redirect stays relative to the host.
    const resolved = new URL(loc, `http://${sbx.getHost(8000)}/sub`)
    assert.equal(resolved.host, sbx.getHost(8000), `Location ${loc}`)
    assert.equal(resolved.pathname, '/sub/', `Location ${loc}`)
    const inner = await hostRequest(sbx.getHost(8000), resolved.pathname)
    assert.equal(inner.status, 200)
    assert.match(inner.body, /inner\.txt/)
  })

  it('the request path and query string reach the service unchanged', async () => {
    const res = await hostRequest(sbx.getHost(8000), '/hello.txt?x=1&y=%2F')
    assert.equal(res.status, 200)
    assert.equal(res.body, 'hello from the sandbox\n')
    // http.server logs each request line to stderr, which the background
    // command's handle collects.
    await waitFor(
      () => server.stderr.includes('"GET /hello.txt?x=1&y=%2F HTTP/1.1" 200'),
      5_000,
      () => `the request line in http.server's log: ${JSON.stringify(server.stderr.slice(-500))}`,
    )
  })

  it('a port nobody listens on: 502 JSON with code 502', async () => {
    const res = await hostRequest(sbx.getHost(8999), '/')
    assert.equal(res.status, 502, res.body)
    const body = parseJSON(res.body, '502 body')
    assert.equal(body.code, 502)
    assert.equal(typeof body.message, 'string')
    assert.ok(body.message.length > 0)
  })

  it('a sandbox that does not exist: 502 JSON with code 502', async () => {
    const res = await hostRequest(`8000-${unknownSandboxId()}.${DOMAIN}`, '/')
    assert.equal(res.status, 502, res.body)
    assert.equal(parseJSON(res.body, '502 body').code, 502)
  })

  // Upstream envd forwards services that listen on 127.0.0.1 only to the
  // sandbox's address, so getHost() reaches them too.
  it('a service bound to 127.0.0.1 is reachable as well', async () => {
    const local = await sbx.commands.run('python3 -m http.server 8001 --bind 127.0.0.1', { background: true, cwd: dir, timeoutMs: 0 })
    try {
      const res = await waitFor(
        async () => {
          const r = await hostRequest(sbx.getHost(8001), '/hello.txt').catch(() => ({ status: 0 }))
          return r.status === 200 && r
        },
        20_000,
        'the 127.0.0.1-bound server to answer through the host route',
      )
      assert.equal(res.body, 'hello from the sandbox\n')
    } finally {
      await sbx.commands.kill(local.pid).catch(() => {})
    }
  })

  it('header routing (E2b-Sandbox-Id, E2b-Sandbox-Port) reaches the same service', async () => {
    const res = await fetch(new URL('/hello.txt', API_URL), {
      headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '8000' },
    })
    assert.equal(res.status, 200)
    assert.equal(await res.text(), 'hello from the sandbox\n')
  })
})
