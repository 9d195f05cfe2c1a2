// sandbox.pty.*: process.Process Start with a PTY, SendInput(pty), Update (resize), Connect, SendSignal.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'

import { MODE, USERS, encode, killQuietly, openSandbox, waitFor } from '../lib/harness.mjs'

// A PTY plus everything it printed so far.
async function openPty(sbx, opts) {
  const term = { out: '' }
  const dec = new TextDecoder()
  term.onData = (d) => {
    term.out += dec.decode(d, { stream: true })
  }
  term.handle = await sbx.pty.create({ cols: 80, rows: 24, timeoutMs: 60_000, onData: (d) => term.onData(d), ...opts })
  term.pid = term.handle.pid
  term.send = (s) => sbx.pty.sendInput(term.pid, encode(s))
  // Waits until the output (after position from) matches re.
  term.expect = (re, from = 0) =>
    waitFor(() => re.exec(term.out.slice(from)), 10_000, () => `${re} in PTY output ${JSON.stringify(term.out.slice(-600))}`)
  return term
}

describe(`pty [${MODE}]`, () => {
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

      it('create + sendInput: echo $((6*7)) prints 42, as the right user in its home', async () => {
        const term = await openPty(sbx, o)
        try {
          assert.ok(term.pid > 0)
          await term.send('echo $((6*7))\n')
          await term.expect(/(^|[\r\n])42\r?\n/)
          const mark = term.out.length
          await term.send('echo "me=$(whoami) home=$HOME cwd=$(pwd) term=$TERM"\n')
          await term.expect(new RegExp(`me=${u.name} home=${u.home} cwd=${u.home} term=xterm-256color`), mark)
        } finally {
          await killQuietly(sbx, term.pid)
        }
      })

      it('resize: stty size shows the new size', async () => {
        const term = await openPty(sbx, o)
        try {
          await term.send('stty size\n')
          await term.expect(/24 80/)
          await sbx.pty.resize(term.pid, { cols: 100, rows: 30 })
          const mark = term.out.length
          await term.send('stty size\n')
          await term.expect(/30 100/, mark)
        } finally {
          await killQuietly(sbx, term.pid)
        }
      })

      it('envs and cwd apply to the PTY shell', async () => {
        const term = await openPty(sbx, { ...o, envs: { PTYVAR: 'pty-value' }, cwd: '/tmp' })
        try {
          await term.send('echo "v=$PTYVAR d=$(pwd)"\n')
          await term.expect(/v=pty-value d=\/tmp/)
        } finally {
          await killQuietly(sbx, term.pid)
        }
      })

      it('the shell owns its terminal: Ctrl-C interrupts the foreground job', async () => {
        const term = await openPty(sbx, o)
        try {
          await term.send('tty\n')
          await term.expect(/\/dev\/pts\/\d+/)
          await term.send('sleep 100\n')
          await new Promise((r) => setTimeout(r, 300))
          await term.send('\x03')
          await term.send('echo after-$((2+2))\n')
          await term.expect(/after-4/)
          assert.doesNotMatch(term.out, /no job control/, 'bash -i must get a controlling terminal')
        } finally {
          await killQuietly(sbx, term.pid)
        }
      })

      it('large output arrives complete', async () => {
        const term = await openPty(sbx, o)
        try {
          await term.send('seq 1 50000; echo END-$((1+1))\n')
          await term.expect(/END-2/)
          assert.match(term.out, /\r\n49999\r\n50000\r\n/)
        } finally {
          await killQuietly(sbx, term.pid)
        }
      })

      it('kill returns true and ends the PTY', async () => {
        const term = await openPty(sbx, o)
        try {
          assert.ok((await sbx.commands.list()).some((p) => p.pid === term.pid), 'PTY listed by commands.list()')
          assert.equal(await sbx.pty.kill(term.pid), true)
          await term.handle.wait().catch(() => {}) // killed: a non-zero exit (CommandExitError) is expected
          await waitFor(
            async () => !(await sbx.commands.list()).some((p) => p.pid === term.pid),
            5000,
            `PTY ${term.pid} to leave commands.list()`,
          )
          assert.equal(await sbx.pty.kill(term.pid), false, 'a second kill finds nothing')
        } finally {
          await killQuietly(sbx, term.pid)
        }
      })

      it('exit in the shell ends wait() with exit code 0', async () => {
        const term = await openPty(sbx, o)
        try {
          await term.send('exit 0\n')
          const r = await term.handle.wait()
          assert.equal(r.exitCode, 0)
        } finally {
          await killQuietly(sbx, term.pid)
        }
      })

      it('pty.connect reattaches to a running PTY', async () => {
        const term = await openPty(sbx, o)
        try {
          await term.send('echo fir""st\n')
          await term.expect(/first\r?\n/)
          await term.handle.disconnect()

          let again = ''
          const dec = new TextDecoder()
          const h2 = await sbx.pty.connect(term.pid, { onData: (d) => (again += dec.decode(d, { stream: true })) })
          assert.equal(h2.pid, term.pid)
          await term.send('echo $((40+2))again\n')
          await waitFor(() => /42again/.test(again), 10_000, () => `42again in reconnected output ${JSON.stringify(again)}`)
          await h2.disconnect()
        } finally {
          await killQuietly(sbx, term.pid)
        }
      })
    })
  }
})
