package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

func deadLettersCommand() *command {
	return &command{name: "dead-letters", args: "list|show|redrive", summary: "deliveries given up, and their redrive (admin)", subs: []*command{
		{name: "list", args: "[flags]", summary: "list dead letters, oldest first", run: deadLettersList},
		{name: "show", args: "<id> [flags]", summary: "show one dead letter with its original message", run: deadLettersShow},
		{name: "redrive", args: "<id> | -all [filters]", summary: "put one dead letter, or all that the filters select, back into delivery",
			details: "Redriven recipients are queued again with a fresh retry window; each dead letter is removed.\n" +
				"-all goes through every page, a progress line on stderr after each.",
			run: deadLettersRedrive},
	}}
}

// deadLetterFilters are the listing's filters, shared by list and the
// bulk redrive.
type deadLetterFilters struct {
	recipient, domain, code, since, until *string
	limit                                 *int
}

func addDeadLetterFilters(fs *flag.FlagSet) deadLetterFilters {
	return deadLetterFilters{
		recipient: fs.String("recipient", "", "only those for this recipient (a name or an address)"),
		domain:    fs.String("domain", "", "only those for recipients of this domain"),
		code:      fs.String("code", "", "only those that failed with this AMTP error code"),
		since:     fs.String("since", "", "only those dead-lettered at or after this RFC 3339 time"),
		until:     fs.String("until", "", "only those dead-lettered before this RFC 3339 time"),
		limit:     fs.Int("limit", 0, "dead letters per page, 1 to 100 (default the gateway's, 50)"),
	}
}

func (f deadLetterFilters) query(cursor string) string {
	q := url.Values{}
	for k, v := range map[string]string{"recipient": *f.recipient, "domain": *f.domain, "code": *f.code, "since": *f.since, "until": *f.until, "cursor": cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *f.limit > 0 {
		q.Set("limit", strconv.Itoa(*f.limit))
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func deadLettersList(inv *invocation, args []string) error {
	fs := inv.flagSet()
	filters := addDeadLetterFilters(fs)
	cursor := fs.String("cursor", "", "continue from this cursor (printed after a full page)")
	inv.jsonFlag(fs)
	if _, err := inv.parse(fs, args, 0, 0); err != nil {
		return err
	}
	return inv.adminCall(http.MethodGet, deadLettersPath+filters.query(*cursor), nil, listing{member: "dead_letters",
		header: []string{"ID", "DEAD-LETTERED", "MESSAGE", "RECIPIENTS", "REASON", "ATTEMPTS"},
		keys:   []string{"id", "dlq_timestamp", "message_id", "recipients", "failure_reason", "attempts"},
		more:   "agentry dead-letters list"}.print)
}

const deadLettersPath = "/v1/admin/dead-letters"

var deadLettersShow = adminAction(http.MethodGet, deadLettersPath, "", printDeadLetter)

// printDeadLetter prints a dead letter's fields, then its original message.
func printDeadLetter(inv *invocation, data []byte) error {
	m, err := object(data)
	if err != nil {
		return err
	}
	printFields(inv.stdout, m, "id", "message_id", "task_id", "recipients", "failure_reason", "error_message",
		"attempts", "first_attempt", "last_attempt", "dlq_timestamp")
	if orig, ok := m["original_message"]; ok {
		b, err := json.Marshal(orig)
		if err != nil {
			return err
		}
		fmt.Fprintln(inv.stdout, "original_message:")
		printJSON(inv.stdout, b)
	}
	return nil
}

// maxRedrivePages bounds a bulk redrive (100 dead letters a page at most):
// every page moves its cursor on, so only a store that never stops
// dead-lettering could reach it.
const maxRedrivePages = 10000

func deadLettersRedrive(inv *invocation, args []string) error {
	fs := inv.flagSet()
	all := fs.Bool("all", false, "redrive every dead letter the filters select (all of them without filters)")
	filters := addDeadLetterFilters(fs)
	inv.jsonFlag(fs)
	pos, err := inv.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	switch {
	case *all && len(pos) == 1:
		return usagef("give a dead letter's id or -all, not both")
	case !*all && len(pos) == 0:
		return usagef("give a dead letter's id, or -all")
	}
	c, err := newAdminClient()
	if err != nil {
		return err
	}
	if !*all {
		return inv.callWith(c, http.MethodPost, deadLettersPath+"/"+url.PathEscape(pos[0])+"/redrive", nil,
			fields("id", "message_id", "task_id", "recipients", "redriven_at"))
	}
	return redriveAll(inv, c, filters)
}

// redriveAll calls the bulk redrive page by page until no cursor is left.
func redriveAll(inv *invocation, c *apiClient, filters deadLetterFilters) error {
	cursor, total := "", 0
	for page := 1; page <= maxRedrivePages; page++ {
		data, err := c.call(http.MethodPost, deadLettersPath+"/redrive"+filters.query(cursor), nil)
		if err != nil {
			return fmt.Errorf("after %d redriven: %w", total, err)
		}
		rows, m, err := list(data, "redriven")
		if err != nil {
			return err
		}
		if err := inv.render(data, func([]byte) error {
			if len(rows) > 0 {
				printTable(inv.stdout, rows, []string{"REDRIVEN", "MESSAGE", "RECIPIENTS"}, []string{"id", "message_id", "recipients"})
			}
			return nil
		}); err != nil {
			return err
		}
		total += len(rows)
		cursor, _ = m["next_cursor"].(string)
		if cursor == "" {
			fmt.Fprintf(inv.stderr, "redrive: page %d, %d redriven, done\n", page, total)
			return nil
		}
		fmt.Fprintf(inv.stderr, "redrive: page %d, %d redriven so far, going on\n", page, total)
	}
	return fmt.Errorf("stopped after %d pages (%d redriven); run it again to go on", maxRedrivePages, total)
}
