// The sandbox lifecycle through the control plane: create (metadata, envs,
// timeout), getInfo, list with filters and pagination, connect, setTimeout,
// kill, metrics and pause.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import {
  RUN_ID,
  SDK_LABEL,
  SDK_NAME,
  SDK_VERSION,
  Sandbox,
  createSandbox,
  drain,
  encode,
  hostRequest,
  parseJSON,
  randomHex,
  randomName,
  rejectsWithin,
  sdk,
  sleep,
  unknownSandboxId,
  waitFor,
} from '../lib/platform.mjs'

const { AuthenticationError, SandboxNotFoundError, TimeoutError, SandboxError } = sdk

// Seconds between two Dates.
const secondsBetween = (a, b) => (b.getTime() - a.getTime()) / 1000

// The tests of this file are independent (each makes its own sandboxes), so
// they run concurrently: most of their time is spent waiting on timeouts.
describe(`sandbox lifecycle ${SDK_LABEL}`, { concurrency: true }, () => {
  it('the SDK under test is the version NESTBOX_E2B_SDK names', () => {
    // e2b-245 is an npm alias (npm:e2b@2.45.0); make sure it did not resolve
    // to the same package as e2b.
    assert.equal(SDK_VERSION, { e2b: '2.51.0', 'e2b-245': '2.45.0' }[SDK_NAME])
  })

  it('create with metadata and envs: the envs reach commands, login shells and root; getInfo reports the sandbox', async (t) => {
    const tag = randomName('create')
    const before = new Date()
    const sbx = await createSandbox(t, { metadata: { tag }, envs: { FOO: 'bar' } })
    assert.equal(typeof sbx.sandboxId, 'string')
    assert.ok(sbx.sandboxId.length > 0, 'sandboxId is set')
    assert.equal(await sbx.isRunning(), true)

    assert.equal((await sbx.commands.run('echo $FOO')).stdout, 'bar\n')
    assert.equal((await sbx.commands.run('echo $FOO', { user: 'root' })).stdout, 'bar\n', 'root sees the sandbox envs too')
    // A fresh login shell started from the command (profile scripts run again).
    assert.equal((await sbx.commands.run(`bash -l -c 'echo "FOO=$FOO"'`)).stdout, 'FOO=bar\n')

    // And an interactive login shell (PTY): the sandbox envs are global.
    let out = ''
    const dec = new TextDecoder()
    const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => (out += dec.decode(d, { stream: true })) })
    try {
      await sbx.pty.sendInput(term.pid, encode('echo "pty:$FOO:"\n'))
      await waitFor(() => /pty:bar:\r?\n/.test(out), 10_000, () => `pty:bar: in PTY output ${JSON.stringify(out.slice(-400))}`)
    } finally {
      await sbx.pty.kill(term.pid).catch(() => {})
    }

    const info = await sbx.getInfo()
    assert.equal(info.sandboxId, sbx.sandboxId)
    assert.equal(info.templateId, 'base')
    assert.deepEqual(info.metadata, { suite: 'nestbox', run: RUN_ID, tag })
    assert.equal(info.state, 'running')
    assert.ok(info.startedAt instanceof Date && !Number.isNaN(info.startedAt.getTime()), `startedAt ${info.startedAt}`)
    assert.ok(info.endAt instanceof Date && !Number.isNaN(info.endAt.getTime()), `endAt ${info.endAt}`)
    assert.ok(Math.abs(secondsBetween(before, info.startedAt)) < 30, `startedAt ${info.startedAt.toISOString()} is now (${before.toISOString()})`)
    // No timeoutMs given: E2B's default is 300 s (2.51 omits `timeout` and the
    // server picks the default; 2.45 always sends 300).
    const lifetime = secondsBetween(info.startedAt, info.endAt)
    assert.ok(Math.abs(lifetime - 300) <= 5, `endAt - startedAt = ${lifetime} s, want about 300`)
    assert.ok(info.cpuCount >= 1, `cpuCount ${info.cpuCount}`)
    assert.ok(info.memoryMB > 0, `memoryMB ${info.memoryMB}`)
    assert.match(info.envdVersion, /^\d+\.\d+\.\d+/)

    // The static form answers the same.
    const again = await Sandbox.getInfo(sbx.sandboxId)
    assert.equal(again.sandboxId, sbx.sandboxId)
    assert.deepEqual(again.metadata, info.metadata)
  })

  it('create with timeoutMs: endAt is startedAt + that timeout', async (t) => {
    const sbx = await createSandbox(t, { timeoutMs: 120_000 })
    const info = await sbx.getInfo()
    const lifetime = secondsBetween(info.startedAt, info.endAt)
    assert.ok(Math.abs(lifetime - 120) <= 5, `endAt - startedAt = ${lifetime} s, want about 120`)
  })

  it('list: metadata filter, paging with limit 1, state filter, killed sandboxes leave the list', async (t) => {
    const tag = randomName('list')
    // One after the other, so that their start times are distinct and ordered.
    const sbxs = []
    for (let i = 0; i < 3; i++) sbxs.push(await createSandbox(t, { metadata: { tag } }))
    const created = sbxs.map((s) => s.sandboxId)
    const ids = [...created].sort()
    assert.equal(new Set(ids).size, 3, 'three distinct sandboxes')

    // Page through with one item per page (SandboxPaginator: hasNext /
    // nextItems, driven by the X-Next-Token response header).
    const paged = await drain(Sandbox.list({ query: { metadata: { tag } }, limit: 1 }))
    assert.ok(paged.pageSizes.every((n) => n <= 1), `limit 1 is honoured: page sizes ${paged.pageSizes}`)
    assert.ok(paged.pageSizes.filter((n) => n === 1).length === 3, `three non-empty pages: ${paged.pageSizes}`)
    // A final empty page is tolerated (a server may hand out a token before it knows nothing follows).
    assert.ok(paged.pageSizes.length <= 4, `page sizes ${paged.pageSizes}`)
    assert.deepEqual(paged.items.map((s) => s.sandboxId).sort(), ids)
    for (const item of paged.items) {
      assert.equal(item.templateId, 'base')
      assert.equal(item.state, 'running')
      assert.deepEqual(item.metadata, { suite: 'nestbox', run: RUN_ID, tag })
      assert.ok(item.startedAt instanceof Date && !Number.isNaN(item.startedAt.getTime()))
      assert.ok(item.endAt.getTime() > item.startedAt.getTime(), 'endAt after startedAt')
    }

    // Without a limit, one page holds all three; two metadata keys must both match.
    const all = await drain(Sandbox.list({ query: { metadata: { tag, suite: 'nestbox' } } }))
    assert.deepEqual(all.items.map((s) => s.sandboxId).sort(), ids)
    assert.deepEqual((await drain(Sandbox.list({ query: { metadata: { tag, suite: 'someone-else' } } }))).items, [])
    assert.deepEqual((await drain(Sandbox.list({ query: { metadata: { tag: `${tag}-nope` } } }))).items, [])

    // Order: newest first by default (the SDK sends no `order`), oldest first
    // with order 'asc' (sent with every page).
    assert.deepEqual(paged.items.map((s) => s.sandboxId), [...created].reverse(), 'default order is newest first')
    const asc = await drain(Sandbox.list({ query: { metadata: { tag } }, limit: 1, order: 'asc' }))
    assert.deepEqual(asc.items.map((s) => s.sandboxId), created, 'order asc is oldest first')

    // Template filter (by ID or alias; `base` is both here).
    const byTemplate = await drain(Sandbox.list({ query: { metadata: { tag }, template: 'base' } }))
    assert.deepEqual(byTemplate.items.map((s) => s.sandboxId).sort(), ids)

    // State filter.
    const running = await drain(Sandbox.list({ query: { metadata: { tag }, state: ['running'] } }))
    assert.deepEqual(running.items.map((s) => s.sandboxId).sort(), ids)
    const paused = await drain(Sandbox.list({ query: { metadata: { tag }, state: ['paused'] } }))
    assert.deepEqual(paused.items, [], 'nothing is paused')

    // An unfiltered list (every sandbox of the team) includes them too, with their metadata.
    const everything = await drain(Sandbox.list())
    for (const id of ids) {
      const item = everything.items.find((s) => s.sandboxId === id)
      assert.ok(item, `${id} in the unfiltered list`)
      assert.equal(item.metadata.tag, tag)
    }

    // A killed sandbox leaves the list.
    assert.equal(await sbxs[0].kill(), true)
    const left = await drain(Sandbox.list({ query: { metadata: { tag } }, limit: 1 }))
    assert.deepEqual(left.items.map((s) => s.sandboxId).sort(), ids.filter((id) => id !== sbxs[0].sandboxId))
  })

  it('connect: a second handle to a running sandbox runs commands and sees its files', async (t) => {
    const sbx = await createSandbox(t, { timeoutMs: 120_000, envs: { CONNECTED: 'yes' } })
    await sbx.files.write('/home/user/connect.txt', 'written before connect')

    const other = await Sandbox.connect(sbx.sandboxId)
    assert.equal(other.sandboxId, sbx.sandboxId)
    assert.equal(await other.isRunning(), true)
    const r = await other.commands.run('cat /home/user/connect.txt; echo; echo $CONNECTED; whoami')
    assert.equal(r.stdout, 'written before connect\nyes\nuser\n')
    // A process started through one handle is visible through the other.
    const bg = await sbx.commands.run('sleep 120', { background: true })
    const procs = await other.commands.list()
    assert.ok(procs.some((p) => p.pid === bg.pid), `pid ${bg.pid} in ${JSON.stringify(procs.map((p) => p.pid))}`)
    assert.equal(await other.commands.kill(bg.pid), true)

    // connect with a longer timeout extends the sandbox's life...
    const before = Date.now()
    await Sandbox.connect(sbx.sandboxId, { timeoutMs: 600_000 })
    const left = ((await sbx.getInfo()).endAt.getTime() - before) / 1000
    assert.ok(left > 590 && left < 620, `after connect with 600 s the sandbox ends in ${left} s`)

    // ...but connect never shortens it. A plain connect() asks for E2B's
    // default of 300 s: 2.45 sends {"timeout":300} to POST /sandboxes/{id}/connect,
    // 2.51 sends no timeout to POST /v2/sandboxes/{id}/connect and the
    // server applies the same default.
    await Sandbox.connect(sbx.sandboxId)
    const stillLeft = ((await sbx.getInfo()).endAt.getTime() - before) / 1000
    assert.ok(stillLeft > 590 && stillLeft < 620, `after a plain connect the sandbox ends in ${stillLeft} s, want about 600 still`)
  })

  // E2B's API description of POST /v2/sandboxes/{id}/connect: "TTL is only
  // extended. The request body is optional; an omitted timeout defaults to
  // 300 seconds" (ConnectSandboxV2.timeout has `default: 300`).
  it('connect() without a timeout extends a shorter one to the default 300 s', async (t) => {
    const sbx = await createSandbox(t, { timeoutMs: 60_000 })
    const before = Date.now()
    await Sandbox.connect(sbx.sandboxId)
    const left = ((await sbx.getInfo()).endAt.getTime() - before) / 1000
    assert.ok(left > 290 && left < 310, `after connect() the sandbox ends in ${left} s, want about 300`)
  })

  it('a wrong API key gets AuthenticationError', async () => {
    // Shaped e2b_<40 hex> because 2.45 checks the format client-side
    // (^e2b_[0-9a-f]+$) before sending anything; 2.51 dropped that check.
    const apiKey = `e2b_${randomHex(20)}`
    await assert.rejects(Sandbox.create({ apiKey }), AuthenticationError)
    await assert.rejects(drain(Sandbox.list({ apiKey })), AuthenticationError)
    await assert.rejects(Sandbox.getInfo(unknownSandboxId(), { apiKey }), AuthenticationError)
    await assert.rejects(Sandbox.kill(unknownSandboxId(), { apiKey }), AuthenticationError)
  })

  it('setTimeout(5000): the sandbox is gone after 6.5 s', async (t) => {
    const sbx = await createSandbox(t)
    await sbx.setTimeout(5000)
    const info = await sbx.getInfo()
    const left = (info.endAt.getTime() - Date.now()) / 1000
    assert.ok(left > 2 && left <= 6, `endAt is about 5 s away, got ${left} s`)
    await sleep(6500)
    assert.equal(await sbx.isRunning(), false, 'isRunning() after the timeout')
    await assert.rejects(sbx.getInfo(), SandboxNotFoundError, 'getInfo after the timeout')
  })

  // Generous windows: on a loaded 2-core machine one SDK call took seconds,
  // and a 5 s first timeout ran out before the second call.
  it('setTimeout(10000), then setTimeout(30000) a second later: still running 11 s after', async (t) => {
    const sbx = await createSandbox(t)
    await sbx.setTimeout(10_000)
    await sleep(1000)
    await sbx.setTimeout(30_000)
    await sleep(11_000)
    assert.equal(await sbx.isRunning(), true, 'the second setTimeout replaced the first')
    assert.equal((await sbx.commands.run('echo alive')).stdout, 'alive\n')
  })

  it('kill while a command runs: the command fails quickly with TimeoutError', async (t) => {
    const sbx = await createSandbox(t)
    const started = Date.now()
    const run = sbx.commands.run('sleep 30')
    await sleep(1000)
    assert.equal(await Sandbox.kill(sbx.sandboxId), true)
    // The envd stream must be cut when the sandbox dies; the SDK then probes
    // /health (502 means gone) and reports the kill as a TimeoutError ("The
    // sandbox was killed or reached its end of life"). Both SDK versions have
    // the same probe.
    const err = await rejectsWithin(run, 10_000, 'commands.run after the sandbox was killed')
    assert.ok(Date.now() - started < 15_000)
    assert.ok(err instanceof TimeoutError, `want TimeoutError, got ${err?.constructor?.name}: ${err?.message}`)
    assert.match(err.message, /killed|end of life|timeout/i)
  })

  it('kill twice: true, then false; getInfo and connect then fail with SandboxNotFoundError', async (t) => {
    const sbx = await createSandbox(t)
    const id = sbx.sandboxId
    assert.equal(await Sandbox.kill(id), true)
    assert.equal(await Sandbox.kill(id), false)
    assert.equal(await sbx.kill(), false, 'the instance method agrees')
    // SandboxNotFoundError exists in both versions (a subclass of the
    // deprecated NotFoundError); getInfo and connect map a 404 to it.
    await assert.rejects(Sandbox.getInfo(id), (err) => {
      assert.ok(err instanceof SandboxNotFoundError, `getInfo: want SandboxNotFoundError, got ${err?.constructor?.name}: ${err?.message}`)
      return true
    })
    await assert.rejects(Sandbox.connect(id), (err) => {
      assert.ok(err instanceof SandboxNotFoundError, `connect: want SandboxNotFoundError, got ${err?.constructor?.name}: ${err?.message}`)
      return true
    })
    await assert.rejects(sbx.setTimeout(60_000), (err) => {
      assert.ok(err instanceof SandboxError, `setTimeout: ${err}`)
      return true
    })
    assert.equal(await sbx.isRunning(), false, '/health through the proxy answers 502 for a killed sandbox')
    const viaHost = await hostRequest(sbx.getHost(8000), '/')
    assert.equal(viaHost.status, 502, `host route of a killed sandbox: ${viaHost.status} ${viaHost.body}`)
    assert.equal(parseJSON(viaHost.body, '502 body').code, 502)
    assert.ok(!(await drain(Sandbox.list({ query: { metadata: { run: RUN_ID } } }))).items.some((s) => s.sandboxId === id))
  })

  it('operations on a sandbox ID that never existed', async () => {
    const id = unknownSandboxId()
    assert.equal(await Sandbox.kill(id), false)
    await assert.rejects(Sandbox.getInfo(id), SandboxNotFoundError)
    await assert.rejects(Sandbox.connect(id), SandboxNotFoundError)
  })

  it('getMetrics: at least one sample with cpuCount >= 1 and memTotal > 0', async (t) => {
    const sbx = await createSandbox(t)
    // Metrics are sampled periodically; give the first sample time to appear.
    const metrics = await waitFor(
      async () => {
        const m = await sbx.getMetrics()
        assert.ok(Array.isArray(m), `getMetrics returned ${JSON.stringify(m)}`)
        return m.length > 0 && m
      },
      30_000,
      'a first metrics sample',
    )
    const m = metrics.at(-1)
    assert.ok(m.cpuCount >= 1, `cpuCount ${m.cpuCount}`)
    assert.ok(m.memTotal > 0, `memTotal ${m.memTotal}`)
    assert.ok(m.memUsed >= 0 && m.memUsed <= m.memTotal, `memUsed ${m.memUsed} of ${m.memTotal}`)
    assert.ok(m.cpuUsedPct >= 0, `cpuUsedPct ${m.cpuUsedPct}`)
    assert.ok(m.timestamp instanceof Date && !Number.isNaN(m.timestamp.getTime()), `timestamp ${m.timestamp}`)
    assert.ok(Math.abs(m.timestamp.getTime() - Date.now()) < 120_000, `timestamp ${m.timestamp.toISOString()} is recent`)
    // The static form, too.
    assert.ok((await Sandbox.getMetrics(sbx.sandboxId)).length > 0)
  })

  it('getMetrics({start, end}): the samples the host kept in the range', async (t) => {
    const sbx = await createSandbox(t)
    // The host samples every 5 s: wait for three periodic samples.
    const all = await waitFor(
      async () => {
        const m = await sbx.getMetrics()
        return m.length >= 4 && m
      },
      40_000,
      'three periodic samples and a reading',
    )
    const times = all.map((m) => m.timestamp.getTime())
    for (let i = 1; i < times.length; i++) assert.ok(times[i] > times[i - 1], `samples in time order: ${times}`)
    // A range that holds only the second sample (unix seconds, as the SDK
    // sends them: the bounds are whole seconds around it).
    const second = all[1].timestamp
    const start = new Date(Math.floor(second.getTime() / 1000) * 1000)
    const end = new Date(start.getTime() + 1000)
    const inRange = await sbx.getMetrics({ start, end })
    assert.ok(inRange.length >= 1 && inRange.length < all.length, `${inRange.length} samples in [${start.toISOString()}, ${end.toISOString()}] of ${all.length}`)
    for (const m of inRange) {
      assert.ok(m.timestamp >= start && m.timestamp.getTime() < end.getTime() + 1000, `sample at ${m.timestamp.toISOString()} is outside [${start.toISOString()}, ${end.toISOString()}]`)
    }
    assert.ok(inRange.some((m) => m.timestamp.getTime() === second.getTime()), 'the second sample is in its range')
    // A range before the sandbox existed holds nothing.
    const before = await sbx.getMetrics({ start: new Date(Date.now() - 3_600_000), end: new Date(Date.now() - 3_000_000) })
    assert.deepEqual(before, [])
  })

  // Pause and resume, through the same lifecycle as the native API. They
  // need the host agent's pause (runsc checkpoint/restore).
  const pauseOf = (sbx) => (typeof sbx.pause === 'function' ? sbx.pause() : sbx.betaPause())

  it('pause, then connect: same PIDs, env vars, files; a process keeps running; a server answers again', async (t) => {
    const sbx = await createSandbox(t, { timeoutMs: 300_000, envs: { NESTBOX_PAUSE_VAR: 'kept' } })
    const dir = `/home/user/${randomName('pause')}`
    await sbx.files.write(`${dir}/file.txt`, 'written before the pause\n')
    const counter = await sbx.commands.run(`i=0; while true; do i=$((i+1)); echo $i > ${dir}/counter; sleep 0.2; done`, { background: true, timeoutMs: 0 })
    const server = await sbx.commands.run('python3 -m http.server 8000', { background: true, cwd: dir, timeoutMs: 0 })
    await waitFor(
      async () => (await hostRequest(sbx.getHost(8000), '/file.txt').catch(() => ({ status: 0 }))).status === 200,
      20_000,
      'the http server to answer before the pause',
    )
    await sleep(1000)
    const before = Number((await sbx.files.read(`${dir}/counter`)).trim())
    assert.ok(before > 0, `counter ${before} before the pause`)

    assert.equal(await pauseOf(sbx), true, 'the first pause pauses')
    assert.equal(await pauseOf(sbx), false, 'pausing a paused sandbox answers false (409)')
    assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, 'paused')
    assert.equal(await sbx.isRunning(), false, 'envd is unreachable while paused')
    const paused = await drain(Sandbox.list({ query: { metadata: { run: RUN_ID }, state: ['paused'] } }))
    assert.ok(paused.items.some((s) => s.sandboxId === sbx.sandboxId && s.state === 'paused'), 'listed as paused')

    const resumed = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 120_000 })
    assert.equal(resumed.sandboxId, sbx.sandboxId)
    assert.equal((await resumed.getInfo()).state, 'running')
    const list = await resumed.commands.list()
    assert.ok(list.some((p) => p.pid === counter.pid), `the counter (pid ${counter.pid}) is still there: ${list.map((p) => p.pid)}`)
    assert.ok(list.some((p) => p.pid === server.pid), `the server (pid ${server.pid}) is still there`)
    assert.equal((await resumed.commands.run('echo $NESTBOX_PAUSE_VAR')).stdout.trim(), 'kept')
    assert.equal(await resumed.files.read(`${dir}/file.txt`), 'written before the pause\n')
    await waitFor(
      async () => Number((await resumed.files.read(`${dir}/counter`)).trim()) > before,
      10_000,
      'the counter to keep counting after the resume',
    )
    await waitFor(
      async () => (await hostRequest(resumed.getHost(8000), '/file.txt').catch(() => ({ status: 0 }))).status === 200,
      20_000,
      'the http server to answer again after the resume',
    )
    // A second connect finds it running.
    assert.equal((await Sandbox.connect(sbx.sandboxId)).sandboxId, sbx.sandboxId)
  })

  it('auto-pause at the timeout, then connect', async (t) => {
    // 2.51 says lifecycle.onTimeout; 2.45 has betaCreate({autoPause}).
    const opts = { timeoutMs: 5_000, metadata: { run: RUN_ID } }
    const sbx =
      typeof Sandbox.betaCreate === 'function' && !SDK_VERSION.startsWith('2.5')
        ? await Sandbox.betaCreate({ ...opts, autoPause: true, requestTimeoutMs: 120_000 })
        : await Sandbox.create({ ...opts, lifecycle: { onTimeout: 'pause' }, requestTimeoutMs: 120_000 })
    t.after(() => Sandbox.kill(sbx.sandboxId).catch(() => {}))
    await sbx.files.write('/home/user/auto.txt', 'auto\n')
    await waitFor(async () => (await Sandbox.getInfo(sbx.sandboxId)).state === 'paused', 60_000, 'the timeout to pause the sandbox')
    const resumed = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 60_000 })
    assert.equal(await resumed.files.read('/home/user/auto.txt'), 'auto\n')
    assert.equal(await resumed.isRunning(), true)
  })
})
