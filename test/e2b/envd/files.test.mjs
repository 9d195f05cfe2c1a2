// sandbox.files.*: GET/POST /files and the filesystem.Filesystem RPCs.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'

import { FileNotFoundError, FileType, FilesystemEventType, InvalidArgumentError, SandboxError } from 'e2b'

import { MODE, USERS, openSandbox, randomName, scratchPath, waitFor } from '../lib/harness.mjs'

const sorted = (xs) => [...xs].sort()

describe(`files [${MODE}]`, () => {
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

      it('write then read text', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        const p = `${dir}/hello.txt`
        const info = await sbx.files.write(p, 'hello wörld ✓\n', o)
        assert.equal(Array.isArray(info), false)
        assert.equal(info.path, p)
        assert.equal(info.name, 'hello.txt')
        assert.equal(info.type, FileType.FILE)
        assert.equal(await sbx.files.read(p, o), 'hello wörld ✓\n')
      })

      it('write then read bytes (format: bytes), blob and stream', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        const p = `${dir}/bin.dat`
        const data = new Uint8Array(4096)
        for (let i = 0; i < data.length; i++) data[i] = i % 256
        await sbx.files.write(p, data.buffer, o)

        const got = await sbx.files.read(p, { ...o, format: 'bytes' })
        assert.ok(got instanceof Uint8Array)
        assert.deepEqual(Buffer.from(got), Buffer.from(data))

        const blob = await sbx.files.read(p, { ...o, format: 'blob' })
        assert.deepEqual(Buffer.from(await blob.arrayBuffer()), Buffer.from(data))

        const stream = await sbx.files.read(p, { ...o, format: 'stream' })
        const chunks = []
        for await (const c of stream) chunks.push(Buffer.from(c))
        assert.deepEqual(Buffer.concat(chunks), Buffer.from(data))
      })

      it('empty file and 2 MiB of random bytes round-trip', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        await sbx.files.write(`${dir}/empty`, '', o)
        assert.equal(await sbx.files.read(`${dir}/empty`, o), '')
        assert.equal((await sbx.files.getInfo(`${dir}/empty`, o)).size, 0)

        const big = randomBytes(2 << 20)
        await sbx.files.write(`${dir}/big`, big.buffer.slice(big.byteOffset, big.byteOffset + big.length), o)
        const got = await sbx.files.read(`${dir}/big`, { ...o, format: 'bytes' })
        assert.equal(got.length, big.length)
        assert.ok(Buffer.from(got).equals(big), '2 MiB file differs after the round trip')
      })

      it('write overwrites an existing file', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        await sbx.files.write(`${dir}/f`, 'a much longer first version', o)
        await sbx.files.write(`${dir}/f`, 'short', o)
        assert.equal(await sbx.files.read(`${dir}/f`, o), 'short')
      })

      it('multi-file write (array form) creates nested directories', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        const infos = await sbx.files.write(
          [
            { path: `${dir}/a.txt`, data: 'A' },
            { path: `${dir}/x/y/b.txt`, data: 'B' },
            { path: `${dir}/x/c.bin`, data: new Uint8Array([0, 1, 2, 255]).buffer },
          ],
          o,
        )
        assert.ok(Array.isArray(infos))
        assert.deepEqual(sorted(infos.map((i) => i.path)), sorted([`${dir}/a.txt`, `${dir}/x/y/b.txt`, `${dir}/x/c.bin`]))
        assert.equal(await sbx.files.read(`${dir}/a.txt`, o), 'A')
        assert.equal(await sbx.files.read(`${dir}/x/y/b.txt`, o), 'B')
        assert.deepEqual([...(await sbx.files.read(`${dir}/x/c.bin`, { ...o, format: 'bytes' }))], [0, 1, 2, 255])

        const more = await sbx.files.writeFiles([{ path: `${dir}/w/one`, data: '1' }], o)
        assert.equal(more.length, 1)
        assert.equal(more[0].path, `${dir}/w/one`)
      })

      it('relative paths resolve against the user\'s home', async (t) => {
        const name = randomName()
        t.after(() => sbx.files.remove(`${u.home}/${name}`, { user: 'root' }).catch(() => {}))
        const info = await sbx.files.write(`${name}/rel.txt`, 'rel', o)
        assert.equal(info.path, `${u.home}/${name}/rel.txt`)
        assert.equal(await sbx.files.read(`${u.home}/${name}/rel.txt`, o), 'rel')
        assert.equal(await sbx.files.exists(`${name}/rel.txt`, o), true)
      })

      it('list with depth 1, 2 and 3: entries, order, modes', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        for (const d of ['sub1/sub1_1', 'sub1/sub1_2', 'sub2/sub2_1']) await sbx.files.makeDir(`${dir}/${d}`, o)
        await sbx.files.write(
          [
            { path: `${dir}/a.txt`, data: 'aaa' },
            { path: `${dir}/sub1/sub1_1/deep.txt`, data: 'c' },
          ],
          o,
        )
        // Upstream envd walks the tree depth-first in lexical order, and
        // the SDK passes that order through.
        const one = await sbx.files.list(dir, o)
        assert.deepEqual(one.map((e) => e.name), ['a.txt', 'sub1', 'sub2'])
        const [a, sub1] = one
        assert.equal(a.type, FileType.FILE)
        assert.equal(a.path, `${dir}/a.txt`)
        assert.equal(a.size, 3)
        assert.equal(a.mode, 0o644)
        assert.equal(a.permissions, '-rw-r--r--')
        assert.equal(a.owner, u.name)
        assert.equal(a.group, u.name)
        assert.equal(a.symlinkTarget, undefined)
        assert.ok(a.modifiedTime instanceof Date)
        assert.equal(sub1.type, FileType.DIR)
        assert.equal(sub1.mode, 0o755)
        assert.equal(sub1.permissions, 'drwxr-xr-x')
        assert.equal(sub1.owner, u.name)

        const two = await sbx.files.list(dir, { ...o, depth: 2 })
        const rel = (es) => es.map((e) => e.path.slice(dir.length + 1))
        assert.deepEqual(rel(two), ['a.txt', 'sub1', 'sub1/sub1_1', 'sub1/sub1_2', 'sub2', 'sub2/sub2_1'])
        assert.deepEqual(two.map((e) => e.name), ['a.txt', 'sub1', 'sub1_1', 'sub1_2', 'sub2', 'sub2_1'])
        const three = await sbx.files.list(dir, { ...o, depth: 3 })
        assert.deepEqual(rel(three), ['a.txt', 'sub1', 'sub1/sub1_1', 'sub1/sub1_1/deep.txt', 'sub1/sub1_2', 'sub2', 'sub2/sub2_1'])

        assert.deepEqual(await sbx.files.list(`${dir}/sub2/sub2_1`, o), [])
        await assert.rejects(sbx.files.list(`${dir}/missing`, o), FileNotFoundError)
        await assert.rejects(sbx.files.list(`${dir}/a.txt`, o), InvalidArgumentError)
      })

      it('exists is true for files and directories, false otherwise', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        await sbx.files.write(`${dir}/f`, 'x', o)
        assert.equal(await sbx.files.exists(`${dir}/f`, o), true)
        assert.equal(await sbx.files.exists(dir, o), true)
        assert.equal(await sbx.files.exists(`${dir}/nope`, o), false)
      })

      it('makeDir returns true, then false when it exists', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        assert.equal(await sbx.files.makeDir(`${dir}/p/q`, o), true)
        assert.equal(await sbx.files.makeDir(`${dir}/p/q`, o), false)
        const info = await sbx.files.getInfo(`${dir}/p/q`, o)
        assert.equal(info.type, FileType.DIR)
        assert.equal(info.owner, u.name)
      })

      it('rename moves a file and returns its new entry', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        await sbx.files.write(`${dir}/old.txt`, 'moved', o)
        const info = await sbx.files.rename(`${dir}/old.txt`, `${dir}/new.txt`, o)
        assert.equal(info.path, `${dir}/new.txt`)
        assert.equal(info.name, 'new.txt')
        assert.equal(info.type, FileType.FILE)
        assert.equal(await sbx.files.exists(`${dir}/old.txt`, o), false)
        assert.equal(await sbx.files.read(`${dir}/new.txt`, o), 'moved')
        await assert.rejects(sbx.files.rename(`${dir}/old.txt`, `${dir}/again.txt`, o), FileNotFoundError)
      })

      it('remove deletes files and whole directories', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        await sbx.files.write([{ path: `${dir}/f` , data: 'x' }, { path: `${dir}/d/e/g`, data: 'y' }], o)
        await sbx.files.remove(`${dir}/f`, o)
        assert.equal(await sbx.files.exists(`${dir}/f`, o), false)
        await sbx.files.remove(`${dir}/d`, o)
        assert.equal(await sbx.files.exists(`${dir}/d`, o), false)
      })

      it('remove of a missing path succeeds (upstream envd uses os.RemoveAll)', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        await sbx.files.remove(`${dir}/never-existed`, o)
      })

      it('getInfo reports type, size, owner, permissions and mtime', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        const before = Date.now()
        await sbx.files.write(`${dir}/info.txt`, '12345', o)
        const f = await sbx.files.getInfo(`${dir}/info.txt`, o)
        assert.equal(f.name, 'info.txt')
        assert.equal(f.path, `${dir}/info.txt`)
        assert.equal(f.type, FileType.FILE)
        assert.equal(f.size, 5)
        assert.equal(f.owner, u.name, 'files written as a user belong to it')
        assert.equal(f.group, u.name)
        assert.match(f.permissions, /^-rw/)
        assert.equal(typeof f.mode, 'number')
        assert.ok(f.modifiedTime instanceof Date, `modifiedTime ${f.modifiedTime}`)
        assert.ok(Math.abs(f.modifiedTime.getTime() - before) < 60_000, `modifiedTime ${f.modifiedTime.toISOString()} is not recent`)

        const d = await sbx.files.getInfo(dir, o)
        assert.equal(d.type, FileType.DIR)
        assert.equal(d.owner, u.name)
        assert.match(d.permissions, /^d/)

        await assert.rejects(sbx.files.getInfo(`${dir}/missing`, o), FileNotFoundError)
      })

      it('getInfo and list report a symlink\'s target', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        await sbx.files.write(`${dir}/target.txt`, 't', o)
        await sbx.commands.run(`ln -s ${dir}/target.txt ${dir}/link`, o)
        // Upstream envd reports the target's type (FILE) with symlinkTarget
        // set; SYMLINK is accepted too.
        const l = await sbx.files.getInfo(`${dir}/link`, o)
        assert.ok([FileType.FILE, FileType.SYMLINK].includes(l.type), `type ${l.type}`)
        assert.equal(l.symlinkTarget, `${dir}/target.txt`)
        assert.equal(l.path, `${dir}/link`)
        const entries = await sbx.files.list(dir, o)
        assert.equal(entries.find((e) => e.name === 'link')?.symlinkTarget, `${dir}/target.txt`)
        assert.equal(entries.find((e) => e.name === 'target.txt')?.symlinkTarget, undefined)
      })

      it('read of a missing file throws FileNotFoundError; of a directory, an error', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        await assert.rejects(sbx.files.read(`${dir}/missing.txt`, o), FileNotFoundError)
        await sbx.files.makeDir(dir, o)
        await assert.rejects(sbx.files.read(dir, o), (err) => {
          assert.ok(err instanceof InvalidArgumentError || err instanceof SandboxError, `got ${err}`)
          return true
        })
      })

      it('watchDir reports a created file, then stops', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        await sbx.files.makeDir(dir, o)
        const events = []
        const handle = await sbx.files.watchDir(dir, (ev) => events.push(ev), o)
        try {
          await sbx.files.write(`${dir}/watched.txt`, 'w', o)
          await waitFor(
            () => events.some((e) => e.name === 'watched.txt' && [FilesystemEventType.CREATE, FilesystemEventType.WRITE].includes(e.type)),
            10_000,
            () => `a create/write event for watched.txt, got ${JSON.stringify(events)}`,
          )
          await sbx.files.remove(`${dir}/watched.txt`, o)
          await waitFor(
            () => events.some((e) => e.name === 'watched.txt' && e.type === FilesystemEventType.REMOVE),
            10_000,
            () => `a remove event for watched.txt, got ${JSON.stringify(events)}`,
          )
        } finally {
          await handle.stop()
        }
        const n = events.length
        await sbx.files.write(`${dir}/after-stop.txt`, 'x', o)
        await new Promise((r) => setTimeout(r, 300))
        assert.equal(events.length, n, 'no events after stop()')
      })

      it('watchDir with includeEntry carries the entry', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        await sbx.files.makeDir(dir, o)
        const events = []
        const handle = await sbx.files.watchDir(dir, (ev) => events.push(ev), { ...o, includeEntry: true })
        try {
          await sbx.files.write(`${dir}/e.txt`, 'entry', o)
          const ev = await waitFor(
            () => events.find((e) => e.name === 'e.txt' && e.entry),
            10_000,
            () => `an event with an entry for e.txt, got ${JSON.stringify(events)}`,
          )
          assert.equal(ev.entry.path, `${dir}/e.txt`)
          assert.equal(ev.entry.type, FileType.FILE)
          assert.equal(ev.entry.owner, u.name)
        } finally {
          await handle.stop()
        }
      })

      it('watchDir recursive reports nested writes', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        await sbx.files.makeDir(`${dir}/n1/n2`, o)
        const events = []
        const handle = await sbx.files.watchDir(dir, (ev) => events.push(ev), { ...o, recursive: true })
        try {
          await sbx.files.write(`${dir}/n1/n2/deep.txt`, 'deep', o)
          await waitFor(
            () => events.some((e) => e.name === 'n1/n2/deep.txt'),
            10_000,
            () => `an event named n1/n2/deep.txt, got ${JSON.stringify(events)}`,
          )
        } finally {
          await handle.stop()
        }
      })

      it('watchDir on a missing directory throws FileNotFoundError, on a file an error', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        await assert.rejects(sbx.files.watchDir(`${dir}/missing`, () => {}, o), FileNotFoundError)
        await sbx.files.write(`${dir}/plain`, 'x', o)
        await assert.rejects(sbx.files.watchDir(`${dir}/plain`, () => {}, o), SandboxError)
      })

      it('gzip write and gzip read', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        const text = 'compress me '.repeat(5000)
        const info = await sbx.files.write(`${dir}/z.txt`, text, { ...o, gzip: true })
        assert.equal(info.path, `${dir}/z.txt`)
        assert.equal(await sbx.files.read(`${dir}/z.txt`, { ...o, gzip: true }), text)
        assert.equal(await sbx.files.read(`${dir}/z.txt`, o), text, 'stored uncompressed')
        assert.equal((await sbx.files.getInfo(`${dir}/z.txt`, o)).size, text.length)
        const bytes = await sbx.files.read(`${dir}/z.txt`, { ...o, format: 'bytes', gzip: true })
        assert.equal(new TextDecoder().decode(bytes), text)

        const many = await sbx.files.writeFiles(
          [1, 2, 3].map((i) => ({ path: `${dir}/gz/${i}.txt`, data: `file ${i}` })),
          { ...o, gzip: true },
        )
        assert.equal(many.length, 3)
        for (const i of [1, 2, 3]) assert.equal(await sbx.files.read(`${dir}/gz/${i}.txt`, o), `file ${i}`)
      })

      it('octet-stream write (useOctetStream)', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        const data = randomBytes(100_000)
        const info = await sbx.files.write(`${dir}/o/raw.bin`, data.buffer.slice(data.byteOffset, data.byteOffset + data.length), {
          ...o,
          useOctetStream: true,
        })
        assert.equal(info.path, `${dir}/o/raw.bin`)
        assert.equal(info.type, FileType.FILE)
        const got = await sbx.files.read(`${dir}/o/raw.bin`, { ...o, format: 'bytes' })
        assert.ok(Buffer.from(got).equals(data))
        assert.equal((await sbx.files.getInfo(`${dir}/o/raw.bin`, o)).owner, u.name)
      })

      it('streamed upload (ReadableStream) goes through octet-stream', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        const parts = ['stream ', 'of ', 'chunks']
        const body = new ReadableStream({
          pull(c) {
            if (parts.length) c.enqueue(new TextEncoder().encode(parts.shift()))
            else c.close()
          },
        })
        await sbx.files.write(`${dir}/s.txt`, body, o)
        assert.equal(await sbx.files.read(`${dir}/s.txt`, o), 'stream of chunks')
      })

      it('metadata is stored, returned, listed, kept on rename and cleared on overwrite', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        const p = `${dir}/meta.txt`
        const info = await sbx.files.write(p, 'm', { ...o, metadata: { owner: 'alice' } })
        assert.deepEqual(info.metadata, { owner: 'alice' })
        assert.deepEqual((await sbx.files.getInfo(p, o)).metadata, { owner: 'alice' })
        assert.deepEqual((await sbx.files.list(dir, o)).find((e) => e.name === 'meta.txt')?.metadata, { owner: 'alice' })

        const moved = await sbx.files.rename(p, `${dir}/meta2.txt`, o)
        assert.deepEqual(moved.metadata, { owner: 'alice' })

        const plain = await sbx.files.write(`${dir}/meta2.txt`, 'n', o)
        assert.equal(plain.metadata, undefined, 'overwrite without metadata clears it')
        assert.equal((await sbx.files.getInfo(`${dir}/meta2.txt`, o)).metadata, undefined)
      })

      it('metadata keys are lower-cased; octet-stream and multi-file uploads carry it too', async (t) => {
        const dir = scratchPath(t, sbx, u.home)
        const a = await sbx.files.write(`${dir}/oct.txt`, 'x', { ...o, useOctetStream: true, metadata: { Team: 'Blue', k2: 'v 2' } })
        assert.deepEqual(a.metadata, { team: 'Blue', k2: 'v 2' })
        assert.deepEqual((await sbx.files.getInfo(`${dir}/oct.txt`, o)).metadata, { team: 'Blue', k2: 'v 2' })

        const many = await sbx.files.write(
          [
            { path: `${dir}/m1`, data: '1' },
            { path: `${dir}/m2`, data: '2' },
          ],
          { ...o, metadata: { source: 'suite' } },
        )
        assert.equal(many.length, 2)
        for (const i of many) {
          assert.deepEqual(i.metadata, { source: 'suite' }, i.path)
          assert.deepEqual((await sbx.files.getInfo(i.path, o)).metadata, { source: 'suite' }, i.path)
        }
      })
    })
  }

  it('a file written as root in the user\'s home belongs to root', async (t) => {
    const dir = scratchPath(t, sbx, '/home/user')
    await sbx.files.makeDir(dir)
    await sbx.files.write(`${dir}/r.txt`, 'r', { user: 'root' })
    assert.equal((await sbx.files.getInfo(`${dir}/r.txt`)).owner, 'root')
    await sbx.files.write(`${dir}/u.txt`, 'u')
    assert.equal((await sbx.files.getInfo(`${dir}/u.txt`)).owner, 'user')
  })
})
