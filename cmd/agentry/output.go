package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printJSON prints a JSON answer indented (as it came, when it is not JSON).
func printJSON(w io.Writer, data []byte) {
	var buf bytes.Buffer
	if json.Indent(&buf, data, "", "  ") == nil {
		data = buf.Bytes()
	}
	fmt.Fprintln(w, strings.TrimSpace(string(data)))
}

// object decodes a JSON object answer.
func object(data []byte) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("the gateway's answer is not a JSON object: %w", err)
	}
	return m, nil
}

// list decodes the array under key of a JSON object answer.
func list(data []byte, key string) ([]map[string]any, map[string]any, error) {
	m, err := object(data)
	if err != nil {
		return nil, nil, err
	}
	raw, _ := m[key].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, v := range raw {
		if o, ok := v.(map[string]any); ok {
			out = append(out, o)
		}
	}
	return out, m, nil
}

// text renders one JSON value in a table cell or a field: strings as they
// are, lists of strings joined, anything else as compact JSON.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		return x
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, text(e))
		}
		if len(parts) == 0 {
			return "-"
		}
		return strings.Join(parts, ",")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// printFields prints the named members of m, one "name: value" a line.
func printFields(w io.Writer, m map[string]any, keys ...string) {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, k := range keys {
		if v, ok := m[k]; ok {
			fmt.Fprintf(tw, "%s:\t%s\n", k, text(v))
		}
	}
	tw.Flush()
}

// printTable prints rows under a header, one column per key.
func printTable(w io.Writer, rows []map[string]any, header []string, keys []string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(keys))
		for i, k := range keys {
			cells[i] = text(r[k])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}
