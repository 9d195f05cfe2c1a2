// sandbox.commands.*: process.Process Start/Connect/List/SendInput/CloseStdin/SendSignal.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'

import { AuthenticationError, CommandExitError, NotFoundError, SandboxError } from 'e2b'

import { INIT_ENV_NAME, INIT_ENV_VALUE, MODE, PLATFORM, SECURE, USERS, killQuietly, openSandbox, waitFor } from '../lib/harness.mjs'

describe(`commands [${MODE}]`, () => {
  let sbx
  before(async () => {
    sbx = await openSandbox()
  })
  after(async () => {
    await sbx?.kill()
  })

  for (const u of USERS) {
    describe(`as ${u.name}`, () => {
      const o = u.opts

      it('run returns stdout, stderr and exit code 0', async () => {
        const r = await sbx.commands.run('echo hello; echo oops >&2', o)
        assert.equal(r.exitCode, 0)
        assert.equal(r.stdout, 'hello\n')
        assert.equal(r.stderr, 'oops\n')
      })

      it('non-zero exit throws CommandExitError with exitCode and the output so far', async () => {
        await assert.rejects(sbx.commands.run('echo out; echo err >&2; exit 3', o), (err) => {
          assert.ok(err instanceof CommandExitError, `want CommandExitError, got ${err?.constructor?.name}: ${err}`)
          assert.equal(err.exitCode, 3)
          assert.equal(err.error, 'exit status 3')
          assert.equal(err.stdout, 'out\n')
          assert.equal(err.stderr, 'err\n')
          return true
        })
      })

      it('unknown command exits 127 with bash\'s message on stderr', async () => {
        await assert.rejects(sbx.commands.run('nestbox-no-such-command-xyz', o), (err) => {
          assert.ok(err instanceof CommandExitError, `got ${err}`)
          assert.equal(err.exitCode, 127)
          assert.match(err.stderr, /nestbox-no-such-command-xyz: command not found/)
          return true
        })
      })

      it('output is streamed while the command still runs', async () => {
        const seen = []
        // Generous gaps: on a loaded machine the first line may take a while
        // through gVisor and the control plane's routing.
        const h = await sbx.commands.run('echo first; sleep 5; echo second', { ...o, background: true, onStdout: (d) => seen.push(d) })
        try {
          await waitFor(() => seen.join('').includes('first'), 4000, () => `"first" before the command ends, got ${JSON.stringify(seen)}`)
          assert.equal(h.exitCode, undefined, 'still running')
          assert.equal((await h.wait()).stdout, 'first\nsecond\n')
        } finally {
          await killQuietly(sbx, h.pid)
        }
      })

      it('delivers output to onStdout/onStderr callbacks', async () => {
        const out = []
        const errs = []
        const r = await sbx.commands.run('for i in 1 2 3; do echo o$i; echo e$i >&2; done', {
          ...o,
          onStdout: (d) => out.push(d),
          onStderr: (d) => errs.push(d),
        })
        assert.equal(out.join(''), 'o1\no2\no3\n')
        assert.equal(errs.join(''), 'e1\ne2\ne3\n')
        assert.equal(r.stdout, 'o1\no2\no3\n')
      })

      it('large output arrives complete', async () => {
        const r = await sbx.commands.run('seq 1 20000', o)
        const lines = r.stdout.trimEnd().split('\n')
        assert.equal(lines.length, 20000)
        assert.equal(lines[19999], '20000')
      })

      it('runs as the requested user with its HOME, in its home by default', async () => {
        const r = await sbx.commands.run('whoami; echo "$HOME"; pwd; id -u', o)
        const [who, home, cwd, uid] = r.stdout.trimEnd().split('\n')
        assert.equal(who, u.name)
        assert.equal(home, u.home)
        assert.equal(cwd, u.home)
        if (u.name === 'root') assert.equal(uid, '0')
        else assert.notEqual(uid, '0')
      })

      it('per-call envs reach the command', async () => {
        const r = await sbx.commands.run('echo "$FOO|$BAR"', { ...o, envs: { FOO: 'foo', BAR: 'with space' } })
        assert.equal(r.stdout, 'foo|with space\n')
        const next = await sbx.commands.run('echo "[$FOO]"', o)
        assert.equal(next.stdout, '[]\n', 'per-call envs must not leak into later commands')
      })

      it('cwd is honoured', async () => {
        const r = await sbx.commands.run('pwd', { ...o, cwd: '/tmp' })
        assert.equal(r.stdout, '/tmp\n')
      })

      it('stdin is at EOF unless stdin:true', async () => {
        const r = await sbx.commands.run('cat; echo done', { ...o, timeoutMs: 10_000 })
        assert.equal(r.stdout, 'done\n')
      })

      it('sendStdin and closeStdin reach a command started with stdin:true', async () => {
        const h = await sbx.commands.run('cat', { ...o, background: true, stdin: true })
        try {
          await sbx.commands.sendStdin(h.pid, 'hello\n')
          await h.sendStdin('world\n')
          await sbx.commands.closeStdin(h.pid)
          const r = await h.wait()
          assert.equal(r.exitCode, 0)
          assert.equal(r.stdout, 'hello\nworld\n')
        } finally {
          await killQuietly(sbx, h.pid)
        }
      })

      it('background: list shows it, connect attaches, kill returns true', async () => {
        const h = await sbx.commands.run('sleep 30', { ...o, background: true, cwd: '/tmp', envs: { LISTED: 'yes' } })
        try {
          assert.ok(Number.isInteger(h.pid) && h.pid > 0, `pid ${h.pid}`)
          assert.equal(h.exitCode, undefined)

          const procs = await sbx.commands.list()
          const p = procs.find((p) => p.pid === h.pid)
          assert.ok(p, `pid ${h.pid} not in list ${JSON.stringify(procs)}`)
          assert.equal(p.cmd, '/bin/bash')
          assert.deepEqual(p.args, ['-l', '-c', 'sleep 30'])
          assert.equal(p.cwd, '/tmp')
          assert.deepEqual(p.envs, { LISTED: 'yes' })

          const c = await sbx.commands.connect(h.pid)
          assert.equal(c.pid, h.pid)

          assert.equal(await sbx.commands.kill(h.pid), true)
          await assert.rejects(c.wait(), (err) => {
            assert.ok(err instanceof CommandExitError, `got ${err}`)
            assert.equal(err.exitCode, -1, 'a signal-killed process reports -1, as Go\'s ProcessState does upstream')
            assert.equal(err.error, 'signal: killed')
            return true
          })
          await assert.rejects(h.wait(), CommandExitError, 'the starting handle ends with the kill')
          await waitFor(
            async () => !(await sbx.commands.list()).some((p) => p.pid === h.pid),
            5000,
            `pid ${h.pid} to leave commands.list() after kill`,
          )
          await assert.rejects(sbx.commands.run(`kill -0 ${h.pid}`, { user: 'root' }), CommandExitError, 'the OS process is gone')
        } finally {
          await killQuietly(sbx, h.pid)
        }
      })

      it('the pid is the OS pid of the command\'s shell', async () => {
        const h = await sbx.commands.run('echo $$', { ...o, background: true })
        const r = await h.wait()
        assert.equal(r.stdout, `${h.pid}\n`)
      })

      it('sendStdin carries 1 MiB', async () => {
        const h = await sbx.commands.run('wc -c', { ...o, background: true, stdin: true })
        try {
          await sbx.commands.sendStdin(h.pid, 'x'.repeat(1 << 20))
          await sbx.commands.closeStdin(h.pid)
          assert.equal((await h.wait()).stdout.trim(), String(1 << 20))
        } finally {
          await killQuietly(sbx, h.pid)
        }
      })

      it('connect to a running command receives its later output and exit code', async () => {
        // The first tick comes after 2 s: time to disconnect and connect
        // again even on a loaded machine.
        const h = await sbx.commands.run('sleep 2; for i in 1 2 3; do echo tick$i; sleep 0.2; done', {
          ...o,
          background: true,
        })
        try {
          await h.disconnect()
          const seen = []
          const c = await sbx.commands.connect(h.pid, { onStdout: (d) => seen.push(d) })
          const r = await c.wait()
          assert.equal(r.exitCode, 0)
          assert.match(r.stdout, /tick3\n$/)
          assert.match(seen.join(''), /tick3/)
        } finally {
          await killQuietly(sbx, h.pid)
        }
      })

      it('handle.kill() kills a background command', async () => {
        const h = await sbx.commands.run('sleep 30', { ...o, background: true })
        try {
          assert.equal(await h.kill(), true)
          await assert.rejects(h.wait(), CommandExitError)
        } finally {
          await killQuietly(sbx, h.pid)
        }
      })

      it('timeoutMs ends the command and envd kills it', async () => {
        const h = await sbx.commands.run('sleep 30', { ...o, background: true, timeoutMs: 1000 })
        try {
          await assert.rejects(h.wait(), SandboxError)
          await waitFor(
            async () => !(await sbx.commands.list()).some((p) => p.pid === h.pid),
            5000,
            `pid ${h.pid} to be killed once its 1 s timeout passed`,
          )
        } finally {
          await killQuietly(sbx, h.pid)
        }
      })
    })
  }

  it('kill of an unknown pid returns false', async () => {
    assert.equal(await sbx.commands.kill(999999), false)
  })

  it('connect to an unknown pid throws NotFoundError', async () => {
    await assert.rejects(sbx.commands.connect(999999), NotFoundError)
  })

  it('an explicit user:"user" (Basic auth) runs as user', async () => {
    const r = await sbx.commands.run('whoami', { user: 'user' })
    assert.equal(r.stdout, 'user\n')
  })

  it('an unknown user is rejected', async () => {
    // Upstream envd answers unauthenticated (AuthenticationError); any SDK
    // error will do as long as nothing runs.
    await assert.rejects(sbx.commands.run('true', { user: 'nestbox-no-such-user' }), (err) => {
      assert.ok(err instanceof SandboxError || err instanceof AuthenticationError, `got ${err?.constructor?.name}: ${err}`)
      return true
    })
  })

  it('global env vars from /init reach commands; per-call envs override them', { skip: !SECURE && !PLATFORM && 'secure and platform modes only (/init sets them)' }, async () => {
    for (const u of USERS) {
      const r = await sbx.commands.run(`echo "$${INIT_ENV_NAME}"`, u.opts)
      assert.equal(r.stdout, `${INIT_ENV_VALUE}\n`, `as ${u.name}`)
    }
    const r = await sbx.commands.run(`echo "$${INIT_ENV_NAME}"`, { envs: { [INIT_ENV_NAME]: 'per-call' } })
    assert.equal(r.stdout, 'per-call\n')
  })
})
