package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// command is one subcommand's flag set and its help: `creditd CMD --help`
// (or -h) prints the usage line, what the command does, its own flags and
// the environment variables it reads, on stdout, and exits 0. A flag the
// command does not know, or a wrong argument, prints the same help on
// stderr and exits 2.
type command struct {
	*flag.FlagSet
	usage string // "creditd balance ID [flags]"
	about string // what the command does, in a few lines
	env   []envVar
	// helpDefault is the default --help shows for a flag whose default
	// came from the environment: the built-in one, so that help never
	// prints a key or secret taken from a variable.
	helpDefault map[string]string
}

// envVar is an environment variable a command reads.
type envVar struct {
	name string
	text string // what it sets: "--addr", or a sentence
}

func newCommand(name, usage, about string) *command {
	c := &command{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), usage: usage, about: about, helpDefault: map[string]string{}}
	c.SetOutput(io.Discard) // the flag package's own messages; parse reports errors
	c.FlagSet.Usage = func() {}
	return c
}

// envNote records an environment variable the command reads without a
// flag, or one of a flag defined elsewhere (billing.Config.RegisterFlags).
func (c *command) envNote(name, text string) { c.env = append(c.env, envVar{name, text}) }

// envFlag records that flag takes its default from env, and the built-in
// default help shows.
func (c *command) envFlag(flag, env, def string) {
	c.envNote(env, "--"+flag)
	c.helpDefault[flag] = def
}

// stringEnv defines a string flag whose default is $env, else def.
func (c *command) stringEnv(name, env, def, usage string) *string {
	c.envFlag(name, env, def)
	return c.String(name, envOr(env, def), usage)
}

// intEnv defines an int flag whose default is $env (an integer), else def.
func (c *command) intEnv(name, env string, def int, usage string) *int {
	c.envFlag(name, env, strconv.Itoa(def))
	return c.Int(name, envInt(env, def), usage)
}

// int64Env defines an int64 flag whose default is $env (a positive
// integer), else def.
func (c *command) int64Env(name, env string, def int64, usage string) *int64 {
	c.envFlag(name, env, strconv.FormatInt(def, 10))
	if v, err := strconv.ParseInt(os.Getenv(env), 10, 64); err == nil && v > 0 {
		def = v
	}
	return c.Int64(name, def, usage)
}

// boolEnv defines a bool flag whose default is $env ("true" or "false",
// as strconv.ParseBool reads it), else false; a value ParseBool does not
// read is reported by envBoolError.
func (c *command) boolEnv(name, env, usage string) *bool {
	c.envFlag(name, env, "false")
	v, _ := strconv.ParseBool(os.Getenv(env))
	return c.Bool(name, v, usage)
}

// envBoolError reports a value of env that is not a boolean.
func envBoolError(flag, env string) error {
	if v := os.Getenv(env); v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			return fmt.Errorf("--%s (%s): want true or false, got %q", flag, env, v)
		}
	}
	return nil
}

// printHelp writes the command's help to w.
func (c *command) printHelp(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", c.usage, strings.TrimSpace(c.about))
	hasFlags := false
	c.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintf(w, "\nflags:\n")
		c.SetOutput(w)
		actual := map[string]string{}
		c.VisitAll(func(f *flag.Flag) {
			if d, ok := c.helpDefault[f.Name]; ok {
				actual[f.Name], f.DefValue = f.DefValue, d
			}
		})
		c.PrintDefaults()
		c.VisitAll(func(f *flag.Flag) {
			if d, ok := actual[f.Name]; ok {
				f.DefValue = d
			}
		})
		c.SetOutput(io.Discard)
	}
	if len(c.env) > 0 {
		fmt.Fprintf(w, "\nenvironment (a flag on the command line wins over its variable):\n")
		for _, e := range c.env {
			fmt.Fprintf(w, "  %s\n    \t%s\n", e.name, e.text)
		}
	}
}

// errHelp: the command printed its help because it was asked to.
var errHelp = errors.New("help shown")

// parse parses args; flags may come before, between or after the
// positional arguments, which it returns. --help and -h print the help on
// stdout (errHelp, exit 0); a bad flag prints the error and the help on
// stderr (exit 2).
func (c *command) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printHelp(os.Stdout)
				return nil, errHelp
			}
			return nil, c.usageError("%v", err)
		}
		args = c.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// usageError prints the message and the help on stderr and exits 2.
func (c *command) usageError(format string, a ...any) error {
	fmt.Fprintf(os.Stderr, "creditd %s: %s\n\n", c.Name(), fmt.Sprintf(format, a...))
	c.printHelp(os.Stderr)
	return exitError(2)
}

// wantArgs checks the number of positional arguments.
// parseNone parses the flags of a command that takes no arguments.
func (c *command) parseNone(args []string) error {
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	return c.wantArgs(pos, 0)
}

func (c *command) wantArgs(pos []string, n int) error {
	if len(pos) != n {
		if n == 0 {
			return c.usageError("unexpected argument %q", pos[0])
		}
		return c.usageError("give exactly %d argument(s), not %d", n, len(pos))
	}
	return nil
}
