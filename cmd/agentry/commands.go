package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// Exit codes of every command but ingest-email, which keeps sendmail's.
const (
	exitOK       = 0
	exitFailed   = 1 // refused by the gateway, or failed
	exitBadUsage = 2 // bad command line
)

// command is one entry of the command table: a group of subcommands or a
// leaf that runs. Help, the usage lines and shell completion are all
// generated from the table, so a command added here has them all.
type command struct {
	name    string
	args    string // what follows the name in a usage line
	summary string // one line
	details string // optional, printed by -h after the summary
	run     func(inv *invocation, args []string) error
	subs    []*command
}

// invocation is one run of a leaf command.
type invocation struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	path           string // "agents add"
	cmd            *command
	json           bool // --json: print the gateway's answers as JSON
}

// errHelpShown ends a command that printed its help: exit 0.
var errHelpShown = errors.New("help shown")

// usageError is a bad command line: exit 2 with the usage line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exitStatus ends a command with its own exit code, its output already
// written (ingest-email's sysexits codes).
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

const rootDetails = `client commands talk to AGENTRY_URL (default http://127.0.0.1:8080): agent commands
with the bearer key in AGENTRY_API_KEY, admin commands (agents, schemas, dead-letters)
with AGENTRY_ADMIN_KEY, else the key in AGENTRY_DATA_DIR/admin.key that a local gateway
generated, else AGENTRY_API_KEY.

exit codes: 0 ok, 1 refused or failed, 2 usage (ingest-email: see its -h).
"agentry <command> -h" explains a command; "agentry completion bash|zsh" prints a
shell completion script.`

func rootCommand() *command {
	return &command{name: "agentry", summary: "an AMTP gateway and a client of its API", details: rootDetails, subs: commandTable()}
}

func run(args []string, stdout, stderr io.Writer) int {
	return dispatch(rootCommand(), args, os.Stdin, stdout, stderr)
}

// dispatch finds the leaf args name under root and runs it.
func dispatch(root *command, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	node, path := root, ""
	for node.run == nil {
		if len(args) == 0 {
			printGroupHelp(stderr, node, path)
			return exitBadUsage
		}
		if isHelp(args[0]) {
			printGroupHelp(stdout, node, path)
			return exitOK
		}
		if args[0] == "help" && node == root {
			// agentry help agents add = agentry agents add -h
			return dispatch(root, append(args[1:len(args):len(args)], "-h"), stdin, stdout, stderr)
		}
		sub := node.find(args[0])
		if sub == nil {
			fmt.Fprintf(stderr, "agentry: unknown command %q\n\n", strings.TrimSpace(path+" "+args[0]))
			printGroupHelp(stderr, node, path)
			return exitBadUsage
		}
		node, path, args = sub, strings.TrimSpace(path+" "+sub.name), args[1:]
	}
	inv := &invocation{stdin: stdin, stdout: stdout, stderr: stderr, path: path, cmd: node}
	return inv.exit(node.run(inv, args))
}

// exit reports err and turns it into the exit code.
func (inv *invocation) exit(err error) int {
	var usage usageError
	var status exitStatus
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return exitOK
	case errors.As(err, &status):
		return int(status)
	case errors.As(err, &usage):
		fmt.Fprintf(inv.stderr, "agentry %s: %s\nusage: %s\n", inv.path, usage.msg, inv.usageLine())
		return exitBadUsage
	}
	fmt.Fprintf(inv.stderr, "agentry %s: %v\n", inv.path, err)
	return exitFailed
}

func (c *command) find(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

func (inv *invocation) usageLine() string {
	return strings.TrimSpace("agentry " + inv.path + " " + inv.cmd.args)
}

// flagSet is a leaf's flag set; parse reports its errors and its help.
func (inv *invocation) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("agentry "+inv.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses flags anywhere among the arguments (agentry agents show
// ann --json) and checks the number of the others, which it returns.
// "--" ends the flags.
func (inv *invocation) parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			inv.printHelp(fs)
			return nil, errHelpShown
		}
		if err != nil {
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	switch {
	case len(pos) < minArgs:
		return nil, usagef("missing arguments")
	case maxArgs >= 0 && len(pos) > maxArgs:
		return nil, usagef("unexpected argument %q", pos[maxArgs])
	}
	return pos, nil
}

// noFlags is parse for a leaf that takes no flags.
func (inv *invocation) noFlags(args []string, minArgs, maxArgs int) ([]string, error) {
	return inv.parse(inv.flagSet(), args, minArgs, maxArgs)
}

// jsonFlag gives the command --json.
func (inv *invocation) jsonFlag(fs *flag.FlagSet) {
	fs.BoolVar(&inv.json, "json", false, "print the gateway's JSON answer")
}

// render prints an answer as JSON under --json, else through human.
func (inv *invocation) render(data []byte, human func(data []byte) error) error {
	if inv.json {
		printJSON(inv.stdout, data)
		return nil
	}
	return human(data)
}

func (inv *invocation) printHelp(fs *flag.FlagSet) {
	w := inv.stdout
	fmt.Fprintf(w, "usage: %s\n\n%s\n", inv.usageLine(), inv.cmd.summary)
	if inv.cmd.details != "" {
		fmt.Fprintf(w, "\n%s\n", inv.cmd.details)
	}
	if fs != nil && hasFlags(fs) {
		fmt.Fprintln(w, "\nflags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func printGroupHelp(w io.Writer, c *command, path string) {
	name := strings.TrimSpace("agentry " + path)
	fmt.Fprintf(w, "%s — %s\n\nusage: %s <command>\n\ncommands:\n", name, c.summary, name)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range c.subs {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(s.name+" "+s.args), s.summary)
	}
	tw.Flush()
	if c.details != "" {
		fmt.Fprintf(w, "\n%s\n", c.details)
	}
}
