// sandbox.files.* through the control plane's sandbox proxy, and the signed
// uploadUrl/downloadUrl, which carry no routing headers at all: the platform
// has to find the sandbox from the signature.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'

import { SDK_LABEL, killQuietly, parseJSON, randomName, sdk, sleep, suiteSandbox, waitFor } from '../lib/platform.mjs'

const { FileNotFoundError, FilesystemEventType } = sdk

describe(`files ${SDK_LABEL}`, { concurrency: true }, () => {
  let sbx
  before(async () => {
    sbx = await suiteSandbox({ timeoutMs: 180_000 })
  })
  after(() => killQuietly(sbx?.sandboxId))

  // A fresh directory under /home/user for one test, removed afterwards.
  const scratch = (t) => {
    const dir = `/home/user/${randomName()}`
    t.after(() => sbx.files.remove(dir).catch(() => {}))
    return dir
  }

  it('write and read text and bytes', async (t) => {
    const dir = scratch(t)
    const info = await sbx.files.write(`${dir}/hello.txt`, 'hello world\n')
    assert.equal(info.path, `${dir}/hello.txt`)
    assert.equal(info.name, 'hello.txt')
    assert.equal(await sbx.files.read(`${dir}/hello.txt`), 'hello world\n')

    const bytes = new Uint8Array(70_000).map((_, i) => (i * 7 + 3) % 256)
    await sbx.files.write(`${dir}/blob.bin`, bytes.buffer)
    const back = await sbx.files.read(`${dir}/blob.bin`, { format: 'bytes' })
    assert.ok(back instanceof Uint8Array)
    assert.deepEqual(Buffer.from(back), Buffer.from(bytes))
    // The commands see the same file.
    assert.equal((await sbx.commands.run(`wc -c < ${dir}/blob.bin`)).stdout.trim(), '70000')
    await assert.rejects(sbx.files.read(`${dir}/missing.txt`), FileNotFoundError)
  })

  it('multi-file write (array form) creates nested directories', async (t) => {
    const dir = scratch(t)
    const infos = await sbx.files.write([
      { path: `${dir}/a.txt`, data: 'A' },
      { path: `${dir}/sub/deeper/b.txt`, data: 'B' },
    ])
    assert.deepEqual(infos.map((i) => i.path).sort(), [`${dir}/a.txt`, `${dir}/sub/deeper/b.txt`])
    assert.equal(await sbx.files.read(`${dir}/a.txt`), 'A')
    assert.equal(await sbx.files.read(`${dir}/sub/deeper/b.txt`), 'B')
  })

  it('list with depth 2, exists, makeDir, rename, remove', async (t) => {
    const dir = scratch(t)
    assert.equal(await sbx.files.makeDir(dir), true)
    assert.equal(await sbx.files.makeDir(dir), false, 'a second makeDir reports it existed')
    await sbx.files.write([
      { path: `${dir}/top.txt`, data: 'top' },
      { path: `${dir}/d1/mid.txt`, data: 'mid' },
      { path: `${dir}/d1/d2/low.txt`, data: 'low' },
    ])

    const depth1 = (await sbx.files.list(dir)).map((e) => e.path).sort()
    assert.deepEqual(depth1, [`${dir}/d1`, `${dir}/top.txt`])
    const depth2 = await sbx.files.list(dir, { depth: 2 })
    assert.deepEqual(depth2.map((e) => e.path).sort(), [`${dir}/d1`, `${dir}/d1/d2`, `${dir}/d1/mid.txt`, `${dir}/top.txt`])
    const d1 = depth2.find((e) => e.path === `${dir}/d1`)
    assert.equal(d1.type, 'dir')
    const top = depth2.find((e) => e.path === `${dir}/top.txt`)
    assert.equal(top.type, 'file')
    assert.equal(top.size, 3)
    assert.equal(top.owner, 'user')

    assert.equal(await sbx.files.exists(`${dir}/top.txt`), true)
    assert.equal(await sbx.files.exists(`${dir}/nope.txt`), false)

    const moved = await sbx.files.rename(`${dir}/top.txt`, `${dir}/renamed.txt`)
    assert.equal(moved.path, `${dir}/renamed.txt`)
    assert.equal(await sbx.files.exists(`${dir}/top.txt`), false)
    assert.equal(await sbx.files.read(`${dir}/renamed.txt`), 'top')

    await sbx.files.remove(`${dir}/renamed.txt`)
    assert.equal(await sbx.files.exists(`${dir}/renamed.txt`), false)
    await sbx.files.remove(`${dir}/d1`)
    assert.equal(await sbx.files.exists(`${dir}/d1/d2/low.txt`), false)
  })

  it('watchDir: a create event arrives', async (t) => {
    const dir = scratch(t)
    await sbx.files.makeDir(dir)
    const events = []
    const w = await sbx.files.watchDir(dir, (e) => events.push(e))
    try {
      await sbx.files.write(`${dir}/new.txt`, 'x')
      await waitFor(
        () => events.some((e) => e.name === 'new.txt' && e.type === FilesystemEventType.CREATE),
        10_000,
        () => `a create event for new.txt, got ${JSON.stringify(events)}`,
      )
    } finally {
      await w.stop()
    }
  })

  // Both versions have {gzip:true} on write (Content-Encoding: gzip) and on
  // read (Accept-Encoding: gzip); the platform reports an envd version that
  // enables them (>= 0.5.7).
  it('gzip write and read', async (t) => {
    const dir = scratch(t)
    const text = 'compress me '.repeat(5000)
    await sbx.files.write(`${dir}/gz.txt`, text, { gzip: true })
    assert.equal((await sbx.commands.run(`wc -c < ${dir}/gz.txt`)).stdout.trim(), String(text.length), 'stored uncompressed')
    assert.equal(await sbx.files.read(`${dir}/gz.txt`, { gzip: true }), text)
    assert.equal(await sbx.files.read(`${dir}/gz.txt`), text)
  })

  // File metadata (X-Metadata-* headers, envd >= 0.6.2) exists in both versions.
  it('metadata on write comes back from getInfo and list', async (t) => {
    const dir = scratch(t)
    const info = await sbx.files.write(`${dir}/meta.txt`, 'm', { metadata: { owner: 'alice' } })
    assert.deepEqual(info.metadata, { owner: 'alice' })
    assert.deepEqual((await sbx.files.getInfo(`${dir}/meta.txt`)).metadata, { owner: 'alice' })
    const listed = (await sbx.files.list(dir)).find((e) => e.name === 'meta.txt')
    assert.deepEqual(listed?.metadata, { owner: 'alice' })
  })

  it('signed downloadUrl and uploadUrl work with a plain fetch and no routing headers', async (t) => {
    const dir = scratch(t)
    await sbx.files.write(`${dir}/dl.txt`, 'download me')

    const dl = await sbx.downloadUrl(`${dir}/dl.txt`)
    const dlUrl = new URL(dl)
    assert.equal(dlUrl.origin, new URL(process.env.E2B_SANDBOX_URL).origin)
    assert.match(dlUrl.searchParams.get('signature') ?? '', /^v1_/, `the URL is signed (the sandbox is secured): ${dl}`)
    const got = await fetch(dl)
    assert.equal(got.status, 200, await got.clone().text())
    assert.equal(await got.text(), 'download me')

    const up = await sbx.uploadUrl(`${dir}/up.txt`)
    assert.match(new URL(up).searchParams.get('signature') ?? '', /^v1_/)
    const form = new FormData()
    form.append('file', new Blob(['uploaded through a URL']), 'up.txt')
    const res = await fetch(up, { method: 'POST', body: form })
    const body = await res.text()
    assert.equal(res.status, 200, body)
    assert.equal(parseJSON(body, 'upload answer')[0]?.path, `${dir}/up.txt`)
    assert.equal(await sbx.files.read(`${dir}/up.txt`), 'uploaded through a URL')

    // A signature for one path does not open another. Upstream E2B routes by
    // host name and envd answers 401; a single-port platform that routes by
    // signature finds no sandbox for it, so it may answer 502 ("sandbox not
    // found") instead. Either way nothing is served.
    const other = new URL(dl)
    other.searchParams.set('path', `${dir}/up.txt`)
    const forged = await fetch(other)
    const forgedBody = await forged.text()
    t.diagnostic(`a signature for another path: ${forged.status} ${forgedBody}`)
    assert.ok([401, 403, 502].includes(forged.status), `a signature for another path: ${forged.status} ${forgedBody}`)
    assert.doesNotMatch(forgedBody, /uploaded through a URL/)
  })

  it('an expired signed URL is refused with 401', async (t) => {
    const dir = scratch(t)
    await sbx.files.write(`${dir}/old.txt`, 'too late')
    const dl = await sbx.downloadUrl(`${dir}/old.txt`, { useSignatureExpiration: 1 })
    assert.ok(new URL(dl).searchParams.get('signature_expiration'), `the URL carries its expiration: ${dl}`)
    await sleep(2500)
    const res = await fetch(dl)
    const body = await res.text()
    assert.equal(res.status, 401, body)
    assert.equal(parseJSON(body, '401 body').code, 401)
    assert.match(body, /expired/)

    const up = await sbx.uploadUrl(`${dir}/late.txt`, { useSignatureExpiration: 1 })
    await sleep(2500)
    const form = new FormData()
    form.append('file', new Blob(['x']), 'late.txt')
    const upRes = await fetch(up, { method: 'POST', body: form })
    assert.equal(upRes.status, 401, await upRes.text())
    assert.equal(await sbx.files.exists(`${dir}/late.txt`), false)
  })
})
