// Package jobs holds what is particular to jobs beside the ledger's job
// rules: the lease queue that hands queued jobs to workers (Queue, bounded
// by Limits.QueuedJobsMax through Admit), the answers to repeated
// operations on ended jobs (Repeat), which assets a leased job may read
// (ParamsName), and the worker protocol's request and answer bodies with
// their checks, shared by the server (httpapi) and the worker client
// (package worker).
//
// The rules that change an account's state (create, lease, heartbeat,
// complete, fail, cancel, lease loss) stay in package ledger, as methods of
// ledger.State: each is one step with the job's hold (a job's ending
// resolves its hold in the same step), and ledger.State.Touch applies lease
// loss on every read of an account. Moving them here would mean exporting
// the hold primitives that keep the balance invariant.
//
// jobs imports ledger; ledger does not import jobs.
package jobs
