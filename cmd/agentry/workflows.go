package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
)

// workflowsShow reads a workflow as its initiator (AGENTRY_API_KEY) or,
// without an agent key, as the admin.
func workflowsShow(inv *invocation, args []string) error {
	pos, err := inv.parseJSONOnly(args, 1, 1)
	if err != nil {
		return err
	}
	c := newClient()
	if os.Getenv("AGENTRY_API_KEY") == "" {
		if c, err = newAdminClient(); err != nil {
			return err
		}
	}
	return inv.callWith(c, http.MethodGet, "/v1/workflows/"+url.PathEscape(pos[0]), nil, printWorkflow)
}

// printWorkflow prints a workflow's fields, then a line per participant.
func printWorkflow(inv *invocation, data []byte) error {
	parts, m, err := list(data, "participants")
	if err != nil {
		return err
	}
	printFields(inv.stdout, m, "workflow_id", "type", "initiator", "status", "created_at", "updated_at", "deadline", "branches")
	fmt.Fprintln(inv.stdout)
	printTable(inv.stdout, parts, []string{"PARTICIPANT", "STATUS", "REQUIRED", "RESPONDED", "RESPONSE", "ERROR"},
		[]string{"address", "status", "required", "responded_at", "response", "error"})
	return nil
}
