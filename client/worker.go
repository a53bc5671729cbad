package client

import (
	"time"

	"github.com/creditd/creditd/jobs"
)

// The worker protocol's request bodies are package jobs' types, the ones
// the server decodes.

func leaseRequest(actions []string, wait time.Duration) jobs.LeaseRequest {
	return jobs.LeaseRequest{Actions: actions, WaitSeconds: int64(wait / time.Second)}
}

func heartbeatRequest(leaseID string) jobs.HeartbeatRequest {
	return jobs.HeartbeatRequest{LeaseID: leaseID}
}

func completeRequest(leaseID string, outputs []string) jobs.CompleteRequest {
	if outputs == nil {
		outputs = []string{}
	}
	return jobs.CompleteRequest{LeaseID: leaseID, Outputs: outputs}
}

func failRequest(leaseID, msg string, retryable bool) jobs.FailRequest {
	return jobs.FailRequest{LeaseID: leaseID, Error: msg, Retryable: retryable}
}
