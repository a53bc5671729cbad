// Command creditd is the credits and usage service and its admin CLI.
//
//	creditd serve   [--addr 127.0.0.1:8080] [--data ./data] [--test-clock] [--config FILE]
//	creditd verify  [--data ./data] [--json]
//	creditd backup  --out FILE [--server URL] | --from-data DIR --out FILE
//	creditd restore --in FILE --data DIR
//	creditd account get|put ID [--plan free|paid] [--timezone ZONE]
//	creditd grant   ID --amount N [--source admin] [--expires-at RFC3339] [--reference REF]
//	creditd balance ID
//	creditd entries ID [--limit N] [--cursor C]
//
// Every command answers --help (or -h) with its own flags and the
// environment variables it reads (help.go). The client commands talk to
// a running server (--server, default $CREDITD_URL or
// http://127.0.0.1:8080) with the admin key from --key,
// $CREDITD_ADMIN_KEY, or the key file in --data.
package main

import (
	"errors"
	"fmt"
	"os"
)

const usage = `creditd — credits and usage service

usage:
  creditd serve   [--addr 127.0.0.1:8080] [--data ./data] [--test-clock] [--config FILE]
  creditd serve   --db postgres://… [--db-max-conns 16]   (several nodes on one PostgreSQL)
  creditd migrate --db postgres://…
  creditd bench   [--accounts 10000] [--concurrency 256] [--duration 10s] [--json]
  creditd verify  [--data ./data | --db postgres://…] [--json]
  creditd worker  [--server URL] [--key WORKER_KEY] [--concurrency 2]
  creditd backup  --out FILE [--server URL] | --from-data DIR --out FILE
  creditd restore --in FILE --data DIR
  creditd account get ID
  creditd account put ID [--plan free|paid] [--timezone ZONE]
  creditd grant   ID --amount N [--source admin|promo|purchase] [--expires-at RFC3339] [--reference REF]
  creditd balance ID
  creditd entries ID [--limit N] [--cursor C]

Client commands (account, grant, balance, entries, backup) take --server URL
(default $CREDITD_URL or http://127.0.0.1:8080) and --key KEY (default
$CREDITD_ADMIN_KEY, else the key stored in --data).

"creditd COMMAND --help" (or "creditd help COMMAND") lists a command's flags
and the environment variables it reads. Docs: README.md and docs/.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	args := os.Args[2:]
	if c := os.Args[1]; (c == "help" || c == "-h" || c == "--help") && len(args) > 0 {
		// creditd help CMD [SUB] is creditd CMD [SUB] --help.
		os.Args = append(append([]string{os.Args[0]}, args...), "--help")
		args = os.Args[2:]
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(args)
	case "verify":
		err = verify(args)
	case "worker":
		err = workerCmd(args)
	case "migrate":
		err = migrateCmd(args)
	case "bench":
		err = benchCmd(args)
	case "backup":
		err = backupCmd(args)
	case "restore":
		err = restoreCmd(args)
	case "account":
		err = accountCmd(args)
	case "grant":
		err = grantCmd(args)
	case "balance":
		err = balanceCmd(args)
	case "entries":
		err = entriesCmd(args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, errHelp) {
			return
		}
		if ee, ok := err.(exitError); ok {
			os.Exit(int(ee))
		}
		fmt.Fprintln(os.Stderr, "creditd:", err)
		os.Exit(1)
	}
}

// exitError exits with a code after the command printed its own message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }
