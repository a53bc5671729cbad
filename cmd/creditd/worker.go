package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/worker"
)

// workerCmd runs the built-in image worker (worker.Builtin) against
// a running creditd until SIGINT or SIGTERM. Jobs in flight when it stops
// are abandoned, not failed: the server requeues them after their lease.
//
//	creditd worker [--server URL] [--key WORKER_KEY] [--data DIR]
//	               [--concurrency 2] [--memory-bytes 536870912]
//	               [--actions crop,upscale,...] [--log-level info]
func workerCmd(args []string) error {
	c := newCommand("worker", "creditd worker [--server URL] [--key WORKER_KEY] [--concurrency 2] [flags]",
		"Runs the built-in image worker (crop, upscale, expand, adjust, filter) as its\n"+
			"own process against a running creditd, until SIGINT or SIGTERM. Jobs in\n"+
			"flight when it stops are not failed: creditd requeues them after their lease.\n"+
			"(serve runs the same worker in-process unless --builtin-worker 0.)")
	server := c.stringEnv("server", "CREDITD_URL", "http://127.0.0.1:8080", "server URL")
	key := c.stringEnv("key", "CREDITD_WORKER_KEY", "", "worker key (default: "+workerKeyFileName+" in --data)")
	data := c.stringEnv("data", "CREDITD_DATA", "./data", "data directory of a local server (to read its "+workerKeyFileName+" when no key is given)")
	concurrency := c.Int("concurrency", worker.DefaultConcurrency, "jobs run at once")
	memory := builtinMemoryFlag(c, "memory-bytes")
	actions := c.String("actions", strings.Join(imageops.Actions, ","), "comma-separated actions to serve (a subset of the built-in ones)")
	logLevel := c.stringEnv("log-level", "CREDITD_LOG_LEVEL", "info", "debug, info, warn or error")
	if err := c.parseNone(args); err != nil {
		return err
	}
	if *concurrency < 1 {
		return fmt.Errorf("--concurrency must be at least 1")
	}
	if *memory < 1 {
		return fmt.Errorf("--memory-bytes must be at least 1")
	}
	var acts []string
	for _, a := range strings.Split(*actions, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !slices.Contains(imageops.Actions, a) {
			return fmt.Errorf("--actions: the built-in worker does not serve %q (it serves %s)", a, strings.Join(imageops.Actions, ", "))
		}
		if !slices.Contains(acts, a) {
			acts = append(acts, a)
		}
	}
	if len(acts) == 0 {
		return fmt.Errorf("--actions: list at least one action")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	k := *key
	if k == "" {
		b, err := os.ReadFile(filepath.Join(*data, workerKeyFileName))
		if err != nil {
			return fmt.Errorf("no worker key: pass --key or set CREDITD_WORKER_KEY (%v)", err)
		}
		k = strings.TrimSpace(string(b))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &worker.Runner{
		Client:      &worker.Client{BaseURL: strings.TrimRight(*server, "/"), Key: k},
		Actions:     acts,
		Handler:     worker.NewBuiltin(*memory).Handle,
		Concurrency: *concurrency,
		Logger:      log,
	}
	return r.Run(ctx)
}
