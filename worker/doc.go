// Package worker is the generation-worker side of creditd's worker protocol
// (docs/worker-protocol.md): a Client with one method per protocol call, a
// Runner that leases jobs and drives a Handler through heartbeats, params
// changes, cancellation, output upload and completion, and Builtin, whose
// Handle serves the imageops actions (crop, upscale, expand, adjust,
// filter) under a memory budget.
// The built-in worker (`creditd worker`, or RunBuiltin inside `creditd
// serve`) and tests use it; external workers in other languages speak the
// same HTTP protocol.
//
// It owns only the worker's side: which job to run, when to heartbeat, when
// to restart or drop an attempt, and what to report. It never touches
// credits. The server decides everything about money: it reserves a job's
// credits when the job is created, charges unit price × outputs delivered on
// complete, and releases the hold on every other ending.
//
// Limits:
//
//   - At most Runner.Concurrency jobs run at once, and a job is leased only
//     when a slot is free, so a worker never holds leases it cannot serve.
//   - Outputs are held in memory until uploaded; handlers should produce
//     at most the job's quantity (extra outputs are dropped).
//   - A handler must honour its context: the Runner cancels it when the job
//     is cancelled, the lease is lost, the params change or Run stops, and
//     waits for it to return before it frees the slot (or starts the
//     restarted attempt), so a handler that ignores its context delays all
//     of these. Builtin.Handle checks its context around imageops.Apply,
//     which itself cannot be interrupted.
//   - Builtin admits jobs by the memory their images need
//     (imageops.MemoryBytes, from the source's header) under its budget
//     (DefaultBuiltinMemoryBytes, 512 MiB, unless configured), so jobs
//     over the budget together wait for each other instead of stacking.
//   - When Run's context ends, in-flight jobs are abandoned, not failed:
//     heartbeats stop and the server requeues each job once its lease
//     passes (up to the server's attempt limit).
//   - The lease is judged by the worker's clock against lease_expires_at:
//     the heartbeat interval is lease/3 clamped to 10 ms..10 s (1 s when
//     lease_expires_at already looks past), and a job whose heartbeats keep
//     failing is dropped once lease_expires_at passes. Clock skew between
//     worker and server larger than a few seconds distorts both.
//   - Nothing is persisted: a worker that restarts loses its leases, and the
//     server requeues their jobs.
package worker
