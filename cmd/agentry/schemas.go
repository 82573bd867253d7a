package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

func schemasCommand() *command {
	return &command{name: "schemas", args: "add|list|show|rm|validate", summary: "the schema registry (admin)", subs: []*command{
		{name: "add", args: "<id> <file|-> [flags]", summary: "register (or replace) the JSON Schema in a file", run: schemasAdd},
		{name: "list", args: "[flags]", summary: "list the registered schemas", run: schemasList},
		{name: "show", args: "<id> [flags]", summary: "print a schema's document (-json: with its version and times)", run: schemasShow},
		{name: "rm", args: "<id>", summary: "delete a schema", run: schemasRemove},
		{name: "validate", args: "<id> <payload-file|-> [flags]", summary: "check a payload against a schema; exit 1 when it does not match", run: schemasValidate},
	}}
}

func schemasAdd(inv *invocation, args []string) error {
	id, file, doc, err := inv.idAndFile(args)
	if err != nil {
		return err
	}
	if !json.Valid(doc) {
		return fmt.Errorf("%s is not JSON", file)
	}
	body, err := json.Marshal(map[string]any{"id": id, "schema": json.RawMessage(doc)})
	if err != nil {
		return err
	}
	return inv.adminCall(http.MethodPost, schemasPath, body, fields("id", "version", "created_at", "updated_at"))
}

const schemasPath = "/v1/admin/schemas"

var (
	schemasList = adminList(schemasPath, listing{member: "schemas",
		header: []string{"ID", "VERSION", "UPDATED"}, keys: []string{"id", "version", "updated_at"}})
	// The document alone by default: it is what schemas add takes back.
	schemasShow = adminAction(http.MethodGet, schemasPath, "", printSchemaDocument)
)

func printSchemaDocument(inv *invocation, data []byte) error {
	var rec struct {
		Schema json.RawMessage `json:"schema"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return fmt.Errorf("the gateway's answer is not a schema record: %w", err)
	}
	printJSON(inv.stdout, rec.Schema)
	return nil
}

func schemasRemove(inv *invocation, args []string) error {
	pos, err := inv.noFlags(args, 1, 1)
	if err != nil {
		return err
	}
	return inv.adminCall(http.MethodDelete, schemasPath+"/"+url.PathEscape(pos[0]), nil, printLine("deleted", pos[0]))
}

// idAndFile parses "<id> <file|->" (and -json) and reads the file.
func (inv *invocation) idAndFile(args []string) (id, file string, content []byte, err error) {
	pos, err := inv.parseJSONOnly(args, 2, 2)
	if err != nil {
		return "", "", nil, err
	}
	content, err = inv.readInput(pos[1])
	return pos[0], pos[1], content, err
}

// errInvalid ends validate with exit 1 once the errors are printed.
var errInvalid = errors.New("the payload does not match the schema")

func schemasValidate(inv *invocation, args []string) error {
	id, _, payload, err := inv.idAndFile(args)
	if err != nil {
		return err
	}
	c, err := newAdminClient()
	if err != nil {
		return err
	}
	data, err := c.call(http.MethodPost, schemasPath+"/"+url.PathEscape(id)+"/validate", payload)
	if err != nil {
		return err
	}
	var res struct {
		Valid  bool `json:"valid"`
		Errors []struct {
			Field   string `json:"field"`
			Message string `json:"error"`
		} `json:"validation_errors"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("the gateway's answer is not a validation result: %w", err)
	}
	err = inv.render(data, func([]byte) error {
		if res.Valid {
			fmt.Fprintln(inv.stdout, "valid")
			return nil
		}
		fmt.Fprintln(inv.stdout, "invalid:")
		for _, e := range res.Errors {
			fmt.Fprintf(inv.stdout, "  %s: %s\n", e.Field, e.Message)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !res.Valid {
		return errInvalid
	}
	return nil
}
