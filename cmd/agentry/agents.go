package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

func agentsCommand() *command {
	return &command{name: "agents", args: "add|list|show|rm|rotate-key", summary: "register and manage local agents (admin)", subs: []*command{
		{name: "add", args: "<name> [flags]", summary: "register an agent (again: replace it, with new credentials); prints its api_key once", run: agentsAdd},
		{name: "list", args: "[flags]", summary: "list the registered agents", run: agentsList},
		{name: "show", args: "<address> [flags]", summary: "show one agent", run: agentsShow},
		{name: "rm", args: "<address> [flags]", summary: "unregister an agent", run: agentsRemove},
		{name: "rotate-key", args: "<address> [flags]", summary: "issue a new api_key (shown once); the old one stops working at once", run: agentsRotateKey},
	}}
}

// agentFields are what the human output of an agent shows, in order; the
// answers about an existing agent add its status.
var (
	agentFields = []string{"address", "delivery_mode", "webhook_url", "supported_schemas", "created_at", "api_key", "webhook_secret"}
	printAgent  = agentPrinter(append(agentFields, "status")...)
)

func agentsAdd(inv *invocation, args []string) error {
	fs := inv.flagSet()
	mode := fs.String("mode", "pull", "delivery mode: pull (an inbox) or push (a webhook)")
	webhook := fs.String("webhook", "", "webhook URL of a push agent")
	var schemas, headers listFlag
	fs.Var(&schemas, "schema", "a schema the agent takes (repeatable)")
	fs.Var(&headers, "header", "'Name: value' sent with every webhook call (repeatable)")
	inv.jsonFlag(fs)
	pos, err := inv.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	req := map[string]any{"address": pos[0], "delivery_mode": *mode}
	if *webhook != "" {
		req["webhook_url"] = *webhook
	}
	if len(schemas) > 0 {
		req["supported_schemas"] = []string(schemas)
	}
	if len(headers) > 0 {
		h := make(map[string]string, len(headers))
		for _, line := range headers {
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				return usagef("-header %q: want 'Name: value'", line)
			}
			h[strings.TrimSpace(name)] = strings.TrimSpace(value)
		}
		req["headers"] = h
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return inv.adminCall(http.MethodPost, agentsPath, body, agentPrinter(agentFields...))
}

const agentsPath = "/v1/admin/agents"

var (
	agentsList = adminList(agentsPath, listing{member: "agents",
		header: []string{"ADDRESS", "MODE", "WEBHOOK", "SCHEMAS", "CREATED"},
		keys:   []string{"address", "delivery_mode", "webhook_url", "supported_schemas", "created_at"}})
	agentsShow      = adminAction(http.MethodGet, agentsPath, "", printAgent)
	agentsRemove    = adminAction(http.MethodDelete, agentsPath, "", printAgent)
	agentsRotateKey = adminAction(http.MethodPost, agentsPath, "/rotate-key", printAgent)
)

// agentPrinter prints the named members of an agent, and the warning that
// goes with the credentials the gateway shows only once.
func agentPrinter(names ...string) printer {
	return func(inv *invocation, data []byte) error {
		m, err := object(data)
		if err != nil {
			return err
		}
		printFields(inv.stdout, m, names...)
		if _, ok := m["api_key"]; ok {
			fmt.Fprintln(inv.stderr, "the api_key (and webhook_secret) are shown only now: keep them")
		}
		return nil
	}
}
