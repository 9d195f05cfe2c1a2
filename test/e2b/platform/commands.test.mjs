// sandbox.commands.* and sandbox.pty.* through the control plane's sandbox
// proxy (every envd call carries E2b-Sandbox-Id and X-Access-Token).

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'

import { SDK_LABEL, encode, killQuietly, randomName, rejectsWithin, sdk, suiteSandbox, waitFor } from '../lib/platform.mjs'

const { CommandExitError } = sdk

describe(`commands and pty ${SDK_LABEL}`, { concurrency: true }, () => {
  let sbx
  before(async () => {
    sbx = await suiteSandbox({ timeoutMs: 180_000 })
  })
  after(() => killQuietly(sbx?.sandboxId))

  it('foreground: stdout, stderr and exit code 0', async () => {
    const r = await sbx.commands.run('echo hello; echo oops >&2')
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, 'hello\n')
    assert.equal(r.stderr, 'oops\n')
  })

  it('foreground: a non-zero exit throws CommandExitError with exitCode and output', async () => {
    await assert.rejects(sbx.commands.run('echo out; echo err >&2; exit 3'), (err) => {
      assert.ok(err instanceof CommandExitError, `want CommandExitError, got ${err?.constructor?.name}: ${err}`)
      assert.equal(err.exitCode, 3)
      assert.equal(err.stdout, 'out\n')
      assert.equal(err.stderr, 'err\n')
      return true
    })
  })

  it('onStdout/onStderr callbacks see the output as it streams', async () => {
    const out = []
    const errs = []
    await sbx.commands.run('for i in 1 2 3; do echo o$i; echo e$i >&2; sleep 0.1; done', {
      onStdout: (d) => out.push(d),
      onStderr: (d) => errs.push(d),
    })
    assert.equal(out.join(''), 'o1\no2\no3\n')
    assert.equal(errs.join(''), 'e1\ne2\ne3\n')
  })

  it('background + list + connect(pid) + kill: true, then false', async () => {
    // The command prints its second line only once the test says so (a
    // file appears), after connect(): no race with a loaded machine.
    const flag = `/tmp/${randomName('go')}`
    const cmd = `echo started; while [ ! -e ${flag} ]; do sleep 0.05; done; echo after-connect; sleep 120`
    const h = await sbx.commands.run(cmd, { background: true })
    assert.ok(h.pid > 0, `pid ${h.pid}`)
    const procs = await sbx.commands.list()
    const p = procs.find((x) => x.pid === h.pid)
    assert.ok(p, `pid ${h.pid} in commands.list(): ${JSON.stringify(procs.map((x) => x.pid))}`)
    assert.deepEqual(p.args.slice(-1), [cmd])

    const attached = await sbx.commands.connect(h.pid)
    assert.equal(attached.pid, h.pid)
    await sbx.commands.run(`touch ${flag}`)
    // The attached handle streams what the command prints from then on.
    await waitFor(() => attached.stdout.includes('after-connect\n'), 10_000, () => `after-connect through connect(), got ${JSON.stringify(attached.stdout)}`)
    // The first handle, still following, gets it too (on its own stream,
    // so not necessarily at the same moment).
    await waitFor(() => h.stdout === 'started\nafter-connect\n', 10_000, () => `the first handle's output, got ${JSON.stringify(h.stdout)}`)

    assert.equal(await sbx.commands.kill(h.pid), true)
    // Both handles see the end: killed by a signal, which wait() reports as a
    // CommandExitError (exit code -1).
    for (const handle of [h, attached]) {
      const err = await rejectsWithin(handle.wait(), 10_000, 'wait() of a killed command')
      assert.ok(err instanceof CommandExitError, `want CommandExitError, got ${err?.constructor?.name}: ${err}`)
      assert.notEqual(err.exitCode, 0)
    }
    assert.equal(await sbx.commands.kill(h.pid), false, 'a second kill finds nothing')
    assert.ok(!(await sbx.commands.list()).some((x) => x.pid === h.pid), 'gone from commands.list()')
  })

  it('reconnecting to a background command receives later output and the exit code', async () => {
    // It goes on only once the test says so, after reconnecting.
    const flag = `/tmp/${randomName('go')}`
    const h = await sbx.commands.run(`while [ ! -e ${flag} ]; do sleep 0.05; done; echo later; exit 4`, { background: true })
    await h.disconnect()
    const seen = []
    const again = await sbx.commands.connect(h.pid, { onStdout: (d) => seen.push(d) })
    await sbx.commands.run(`touch ${flag}`)
    const err = await rejectsWithin(again.wait(), 15_000, 'wait() after reconnecting')
    assert.ok(err instanceof CommandExitError, `got ${err}`)
    assert.equal(err.exitCode, 4)
    assert.equal(seen.join(''), 'later\n')
  })

  // Both 2.45.0 and 2.51.0 have `stdin: true`, sendStdin and closeStdin (the
  // envd version the platform reports, >= 0.5.2, enables closeStdin).
  it('stdin: sendStdin + closeStdin to cat', async () => {
    const h = await sbx.commands.run('cat', { background: true, stdin: true })
    await sbx.commands.sendStdin(h.pid, 'line one\n')
    await sbx.commands.sendStdin(h.pid, encode('line two\n'))
    await sbx.commands.closeStdin(h.pid)
    const r = await h.wait()
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, 'line one\nline two\n')
  })

  it('without stdin:true, stdin is at EOF (cat ends at once)', async () => {
    const r = await sbx.commands.run('cat; echo done', { timeoutMs: 10_000 })
    assert.equal(r.stdout, 'done\n')
  })

  it('per-call envs and cwd', async () => {
    const r = await sbx.commands.run('echo "A=$A B=$B"; pwd', { envs: { A: '1', B: 'two words' }, cwd: '/tmp' })
    assert.equal(r.stdout, 'A=1 B=two words\n/tmp\n')
    const later = await sbx.commands.run('echo "A=$A"; pwd')
    assert.equal(later.stdout, 'A=\n/home/user\n', 'per-call envs and cwd do not stick')
  })

  it('users: the default is user (home /home/user), {user:"root"} is root', async () => {
    assert.equal((await sbx.commands.run('whoami; echo $HOME')).stdout, 'user\n/home/user\n')
    assert.equal((await sbx.commands.run('whoami; echo $HOME', { user: 'root' })).stdout, 'root\n/root\n')
    assert.equal((await sbx.commands.run('whoami', { user: 'user' })).stdout, 'user\n')
  })

  it('pty: create, sendInput (echo $((6*7)) prints 42), resize, kill', async () => {
    let out = ''
    const dec = new TextDecoder()
    const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => (out += dec.decode(d, { stream: true })) })
    const expect = (re, from = 0) =>
      waitFor(() => re.test(out.slice(from)), 10_000, () => `${re} in PTY output ${JSON.stringify(out.slice(-400))}`)
    try {
      assert.ok(term.pid > 0)
      await sbx.pty.sendInput(term.pid, encode('echo $((6*7))\n'))
      await expect(/(^|[\r\n])42\r?\n/)

      let mark = out.length
      await sbx.pty.sendInput(term.pid, encode('stty size\n'))
      await expect(/24 80/, mark)
      await sbx.pty.resize(term.pid, { cols: 100, rows: 30 })
      mark = out.length
      await sbx.pty.sendInput(term.pid, encode('stty size\n'))
      await expect(/30 100/, mark)
    } finally {
      assert.equal(await sbx.pty.kill(term.pid), true)
    }
    const err = await rejectsWithin(term.wait(), 10_000, 'wait() of a killed PTY')
    assert.ok(err instanceof CommandExitError, `got ${err}`)
    assert.equal(await sbx.pty.kill(term.pid), false, 'a second kill finds nothing')
  })
})
