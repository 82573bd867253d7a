package main

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// paths lists every command and subcommand of the table.
func paths(c *command, prefix []string) [][]string {
	var out [][]string
	for _, s := range c.subs {
		p := append(append([]string{}, prefix...), s.name)
		out = append(out, p)
		out = append(out, paths(s, p)...)
	}
	return out
}

// TestEveryCommandAnswersHelp: -h, --help and `agentry help …` print the
// command's usage on stdout and exit 0, for every command and subcommand,
// without running it (serve -h once started a gateway, dns-record -h
// printed a record, store -h and send -h exited 1).
func TestEveryCommandAnswersHelp(t *testing.T) {
	t.Setenv("AGENTRY_DATA_DIR", t.TempDir())
	all := paths(rootCommand(), nil)
	require.Greater(t, len(all), 30)
	for _, p := range all {
		name := strings.Join(p, " ")
		for _, args := range [][]string{append(p, "-h"), append(p, "--help"), append([]string{"help"}, p...)} {
			code, out, errs := runCLI(t, args...)
			assert.Equal(t, exitOK, code, "agentry %s: %s", strings.Join(args, " "), errs)
			assert.Contains(t, out, "usage: agentry "+name, "agentry %s", strings.Join(args, " "))
			assert.Empty(t, errs, "agentry %s", strings.Join(args, " "))
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		code, out, _ := runCLI(t, args...)
		assert.Equal(t, exitOK, code)
		assert.Contains(t, out, "usage: agentry <command>")
	}
}

// TestUsageErrorsExit2: a bad command line exits 2 with a usage line on
// stderr.
func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"agents"}, {"agents", "frob"}, {"agents", "show"}, {"agents", "list", "extra"},
		{"schemas", "add", "id"}, {"dead-letters", "list", "-nope"}, {"status"}, {"ack", "one"},
		{"dns-record", "extra"}, {"serve", "-x"}, {"store", "backup"}, {"completion"}, {"healthcheck", "-timeout", "2h"},
	} {
		code, _, errs := runCLI(t, args...)
		assert.Equal(t, exitBadUsage, code, "agentry %v: %s", args, errs)
		assert.Contains(t, errs, "usage: agentry", "agentry %v", args)
	}
}

// TestCompletion: the bash script (zsh loads it through bashcompinit)
// completes every command and each group's subcommands.
func TestCompletion(t *testing.T) {
	code, script, errs := runCLI(t, "completion", "bash")
	require.Equal(t, 0, code, errs)
	complete := func(words ...string) []string {
		line := "source /dev/stdin; COMP_WORDS=(" + strings.Join(words, " ") + "); COMP_CWORD=" +
			strconv.Itoa(len(words)-1) + `; _agentry; printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command("bash", "-c", line)
		cmd.Stdin = strings.NewReader(script)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return strings.Fields(string(out))
	}
	root := rootCommand()
	top := complete("agentry", "''")
	for _, c := range root.subs {
		assert.Contains(t, top, c.name)
		for _, s := range c.subs {
			assert.Contains(t, complete("agentry", c.name, "''"), s.name, "agentry %s", c.name)
		}
	}
	assert.Equal(t, []string{"dead-letters"}, complete("agentry", "dead"))
	assert.Contains(t, complete("agentry", "agents", "add", "--j"), "--json")

	code, zsh, _ := runCLI(t, "completion", "zsh")
	require.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(zsh, "#compdef agentry\n"))
	assert.Contains(t, zsh, "complete -F _agentry agentry")
}
