// Package app is creditd's application layer: every use case the edges
// offer (accounts, grants, holds, jobs and their assets, uploads and
// their budget, credentials and revocation, consume-once, events,
// feedback) as typed methods of one Service. httpapi (the JSON API), web
// (the pages) and billing (Stripe) are thin peers over it: none imports
// another and none holds a store; they translate their protocol to calls
// of a Service and back.
//
// Errors are *ledger.Error values; Status maps each code to its HTTP
// status in the one table every edge uses.
package app
