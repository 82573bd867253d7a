package main

import (
	"fmt"
	"net/http"
	"net/url"
)

// printer is the human form of one answer of the gateway.
type printer func(inv *invocation, data []byte) error

// parseJSONOnly parses the arguments of a leaf whose one flag is -json.
func (inv *invocation) parseJSONOnly(args []string, minArgs, maxArgs int) ([]string, error) {
	fs := inv.flagSet()
	inv.jsonFlag(fs)
	return inv.parse(fs, args, minArgs, maxArgs)
}

// callWith makes one call with c and prints its answer: the JSON under
// -json, else through human.
func (inv *invocation) callWith(c *apiClient, method, path string, body []byte, human printer) error {
	data, err := c.call(method, path, body)
	if err != nil {
		return err
	}
	return inv.render(data, func(data []byte) error { return human(inv, data) })
}

// adminCall is callWith the admin's client.
func (inv *invocation) adminCall(method, path string, body []byte, human printer) error {
	c, err := newAdminClient()
	if err != nil {
		return err
	}
	return inv.callWith(c, method, path, body, human)
}

// listing is the human form of a list answer: the objects under member,
// one row each.
type listing struct {
	member string
	header []string
	keys   []string
	// more is the command line that goes on after a full page (the answer's
	// next_cursor is appended); empty where the listing has no pages.
	more string
}

func (l listing) print(inv *invocation, data []byte) error {
	rows, page, err := list(data, l.member)
	if err != nil {
		return err
	}
	printTable(inv.stdout, rows, l.header, l.keys)
	if next, _ := page["next_cursor"].(string); next != "" && l.more != "" {
		fmt.Fprintf(inv.stderr, "more: %s -cursor %s\n", l.more, next)
	}
	return nil
}

// fields prints the named members of an object answer.
func fields(names ...string) printer {
	return func(inv *invocation, data []byte) error {
		m, err := object(data)
		if err != nil {
			return err
		}
		printFields(inv.stdout, m, names...)
		return nil
	}
}

// printLine prints one line whatever the answer: for the calls whose
// answer says nothing the command line did not.
func printLine(words ...any) printer {
	return func(inv *invocation, _ []byte) error {
		fmt.Fprintln(inv.stdout, words...)
		return nil
	}
}

// adminList is a leaf that lists what GET path answers.
func adminList(path string, l listing) func(*invocation, []string) error {
	return func(inv *invocation, args []string) error {
		if _, err := inv.parseJSONOnly(args, 0, 0); err != nil {
			return err
		}
		return inv.adminCall(http.MethodGet, path, nil, l.print)
	}
}

// adminAction is a leaf that takes one id and makes one admin call about
// it, at prefix/<id><suffix>.
func adminAction(method, prefix, suffix string, human printer) func(*invocation, []string) error {
	return func(inv *invocation, args []string) error {
		pos, err := inv.parseJSONOnly(args, 1, 1)
		if err != nil {
			return err
		}
		return inv.adminCall(method, prefix+"/"+url.PathEscape(pos[0])+suffix, nil, human)
	}
}
