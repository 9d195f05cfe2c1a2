// Snapshots and fork through the control plane (issue 12): createSnapshot
// of a running sandbox, sandboxes started from it (one and several, each
// with the snapshot's files and processes and its own state), the
// snapshot's list with its filters and pages, deleteSnapshot, and fork
// with a count.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { SDK_LABEL, Sandbox, createSandbox, drain, killQuietly, randomName } from '../lib/platform.mjs'

// deleteQuietly deletes a snapshot by ID, ignoring errors; for cleanup hooks.
async function deleteQuietly(snapshotId) {
  if (snapshotId) await Sandbox.deleteSnapshot(snapshotId).catch(() => {})
}

// snapshotOf writes a file and starts a background counter in sbx, then
// takes a snapshot (named name, if given) and deletes it when t ends.
async function snapshotOf(t, sbx, name) {
  await sbx.files.write('/home/user/state.txt', 'before the snapshot\n')
  // A process whose memory (its counter) the snapshot must carry.
  await sbx.commands.run(`bash -c 'n=0; while true; do n=$((n+1)); echo $n > /tmp/counter; sleep 0.2; done'`, { background: true })
  const info = await sbx.createSnapshot(name ? { name } : undefined)
  t.after(() => deleteQuietly(info.snapshotId))
  return info
}

// fromSnapshot starts a sandbox from a snapshot and kills it when t ends.
function fromSnapshot(t, snapshotId, opts = {}) {
  return createSandbox(t, { ...opts, template: snapshotId })
}

// counter reads the background counter of sbx.
async function counter(sbx) {
  return Number((await sbx.files.read('/tmp/counter')).trim())
}

describe(`snapshots and fork ${SDK_LABEL}`, { concurrency: true }, () => {
  it('createSnapshot answers its ID and names; the source runs on; a sandbox from it has its files and processes and its own identity', async (t) => {
    const src = await createSandbox(t)
    const name = randomName('snap')
    const info = await snapshotOf(t, src, name)
    assert.equal(info.snapshotId, `${name}:default`)
    assert.deepEqual(info.names, [info.snapshotId])
    assert.equal(await src.isRunning(), true, 'the source runs on after the snapshot')
    assert.equal((await src.commands.run('echo still here')).stdout, 'still here\n')

    const child = await fromSnapshot(t, info.snapshotId, { envs: { CHILD: '1' } })
    assert.notEqual(child.sandboxId, src.sandboxId)
    assert.equal(await child.files.read('/home/user/state.txt'), 'before the snapshot\n')
    // The counter process came back with the memory and goes on counting.
    const first = await counter(child)
    await new Promise((r) => setTimeout(r, 1000))
    assert.ok((await counter(child)) > first, 'the restored background process keeps running')
    assert.equal((await child.commands.run('echo $CHILD')).stdout, '1\n', 'envs of the create reach new commands')
    // Its own state: a write in the child is not in the source.
    await child.files.write('/home/user/child.txt', 'child')
    assert.equal(await src.files.exists('/home/user/child.txt'), false)
  })

  it('several sandboxes from the same snapshot: each starts from it and keeps its own writes', async (t) => {
    const src = await createSandbox(t)
    const info = await snapshotOf(t, src)
    assert.match(info.snapshotId, /^[a-z0-9]{20}:default$/, 'an unnamed snapshot is <id>:default')
    const kids = await Promise.all([0, 1, 2].map(() => fromSnapshot(t, info.snapshotId)))
    assert.equal(new Set(kids.map((k) => k.sandboxId)).size, 3)
    for (const [i, k] of kids.entries()) {
      assert.equal(await k.files.read('/home/user/state.txt'), 'before the snapshot\n')
      await k.files.write(`/home/user/mine-${i}.txt`, `kid ${i}`)
    }
    for (const [i, k] of kids.entries()) {
      for (let j = 0; j < kids.length; j++) {
        assert.equal(await k.files.exists(`/home/user/mine-${j}.txt`), i === j, `sandbox ${i} sees mine-${j}.txt only if it wrote it`)
      }
    }
    // The snapshot outlives its source.
    await src.kill()
    const late = await fromSnapshot(t, info.snapshotId)
    assert.equal(await late.files.read('/home/user/state.txt'), 'before the snapshot\n')
  })

  it('listSnapshots filters by sandboxId and name and pages; deleteSnapshot is true, then false', async (t) => {
    const src = await createSandbox(t)
    const name = randomName('list')
    const named = await snapshotOf(t, src, name)
    const unnamed = await src.createSnapshot()
    t.after(() => deleteQuietly(unnamed.snapshotId))

    const { items, pageSizes } = await drain(Sandbox.listSnapshots({ sandboxId: src.sandboxId, limit: 1 }))
    assert.deepEqual(items.map((s) => s.snapshotId).sort(), [named.snapshotId, unnamed.snapshotId].sort())
    assert.ok(pageSizes.length >= 2, `pages of 1: ${pageSizes}`)
    for (const filter of [name, `${name}:default`]) {
      const page = await Sandbox.listSnapshots({ name: filter }).nextItems()
      assert.deepEqual(page.map((s) => s.snapshotId), [named.snapshotId], `name filter ${filter}`)
    }
    assert.deepEqual(await Sandbox.listSnapshots({ name: randomName('none') }).nextItems(), [])
    const mine = await src.listSnapshots().nextItems()
    assert.equal(mine.length, 2, 'the instance method lists its own snapshots')

    assert.equal(await Sandbox.deleteSnapshot(named.snapshotId), true)
    assert.equal(await Sandbox.deleteSnapshot(named.snapshotId), false)
    const after = await drain(Sandbox.listSnapshots({ sandboxId: src.sandboxId }))
    assert.deepEqual(after.items.map((s) => s.snapshotId), [unnamed.snapshotId])
    await assert.rejects(Sandbox.create(named.snapshotId, { requestTimeoutMs: 60_000 }), 'a deleted snapshot starts nothing')
  })

  it('fork with a count: each fork has the source state and its own, and the source runs on', async (t) => {
    const src = await createSandbox(t)
    await src.files.write('/home/user/state.txt', 'before the fork\n')
    const forks = await src.fork({ count: 3, timeoutMs: 120_000 })
    for (const f of forks) if (!(f instanceof Error)) t.after(() => killQuietly(f.sandboxId))
    assert.equal(forks.length, 3)
    for (const f of forks) assert.ok(!(f instanceof Error), `fork failed: ${f}`)
    assert.equal(new Set([src.sandboxId, ...forks.map((f) => f.sandboxId)]).size, 4)
    for (const [i, f] of forks.entries()) {
      assert.equal(await f.files.read('/home/user/state.txt'), 'before the fork\n')
      await f.files.write('/home/user/fork.txt', `fork ${i}`)
    }
    for (const [i, f] of forks.entries()) assert.equal(await f.files.read('/home/user/fork.txt'), `fork ${i}`)
    assert.equal(await src.files.exists('/home/user/fork.txt'), false)
    assert.equal(await src.isRunning(), true)
  })
})
