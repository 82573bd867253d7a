package email

import (
	"bytes"
	"encoding/json"
	"errors"
	"html"
	"strings"
)

// Bounds of the payload's presentation. The attached JSON always carries
// the whole message; the text and HTML parts show what a person can read.
const (
	maxShownValues = 5000      // JSON values shown; the rest is cut
	maxShownDepth  = 32        // nesting shown
	maxShownBytes  = 256 << 10 // text of the payload's rendering
)

// node is one JSON value of the payload, kept in the sender's member
// order (a map would lose it).
type node struct {
	kind   nodeKind
	scalar string   // a string's text, or a number, bool or null as written
	labels []string // object member names
	kids   []*node  // object member values, or array items
}

type nodeKind int

const (
	kindScalar nodeKind = iota
	kindObject
	kindArray
)

var errCut = errors.New("presentation cut")

// payloadTree decodes raw into a tree of at most maxShownValues values and
// maxShownDepth levels; cut reports that the tree shows only a part.
func payloadTree(raw []byte) (root *node, cut bool) {
	b := &treeBuilder{dec: json.NewDecoder(bytes.NewReader(raw))}
	b.dec.UseNumber()
	root, err := b.value(0)
	if root == nil {
		return &node{scalar: "(no payload)"}, err != nil
	}
	return root, err != nil
}

type treeBuilder struct {
	dec   *json.Decoder
	count int
}

// value reads one value. On errCut (or a decoding error) it returns what
// it built so far, which is still a well-formed tree.
func (b *treeBuilder) value(depth int) (*node, error) {
	b.count++
	if b.count > maxShownValues || depth > maxShownDepth {
		return nil, errCut
	}
	tok, err := b.dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return b.object(depth)
		}
		return b.array(depth)
	case string:
		return &node{scalar: t}, nil
	case json.Number:
		return &node{scalar: t.String()}, nil
	case bool:
		if t {
			return &node{scalar: "true"}, nil
		}
		return &node{scalar: "false"}, nil
	default:
		return &node{scalar: "null"}, nil
	}
}

func (b *treeBuilder) object(depth int) (*node, error) {
	n := &node{kind: kindObject}
	for b.dec.More() {
		tok, err := b.dec.Token()
		if err != nil {
			return n, err
		}
		label, _ := tok.(string)
		kid, err := b.value(depth + 1)
		if kid != nil {
			n.labels = append(n.labels, label)
			n.kids = append(n.kids, kid)
		}
		if err != nil {
			return n, err
		}
	}
	_, err := b.dec.Token()
	return n, err
}

func (b *treeBuilder) array(depth int) (*node, error) {
	n := &node{kind: kindArray}
	for b.dec.More() {
		kid, err := b.value(depth + 1)
		if kid != nil {
			n.kids = append(n.kids, kid)
		}
		if err != nil {
			return n, err
		}
	}
	_, err := b.dec.Token()
	return n, err
}

// boundedWriter keeps the first max bytes written to it and notes the rest.
type boundedWriter struct {
	b   strings.Builder
	max int
	cut bool
}

func (w *boundedWriter) WriteString(s string) {
	if w.cut {
		return
	}
	if w.b.Len()+len(s) > w.max {
		w.b.WriteString(clip(s, w.max-w.b.Len()))
		w.cut = true
		return
	}
	w.b.WriteString(s)
}

// textTree renders n as labelled fields: "label: value", nested objects
// indented two spaces, array items as "- item", multi-line strings as an
// indented block after "|".
func textTree(w *boundedWriter, n *node, indent int) {
	switch n.kind {
	case kindScalar:
		w.WriteString(strings.Repeat(" ", indent))
		textScalar(w, n.scalar, indent)
	case kindObject:
		textObject(w, n, indent, "")
	case kindArray:
		textArray(w, n, indent, "")
	}
}

// textObject writes the members of n at indent; lead, when set, replaces
// the indentation of the first line (an array item's "- ").
func textObject(w *boundedWriter, n *node, indent int, lead string) {
	if len(n.kids) == 0 {
		w.WriteString(firstLine(lead, indent) + "(empty)\n")
		return
	}
	for i, kid := range n.kids {
		if i == 0 {
			w.WriteString(firstLine(lead, indent))
		} else {
			w.WriteString(strings.Repeat(" ", indent))
		}
		w.WriteString(oneLine(n.labels[i]) + ":")
		textMember(w, kid, indent)
	}
}

func textArray(w *boundedWriter, n *node, indent int, lead string) {
	if len(n.kids) == 0 {
		w.WriteString(firstLine(lead, indent) + "(none)\n")
		return
	}
	for i, kid := range n.kids {
		prefix := strings.Repeat(" ", indent) + "- "
		if i == 0 && lead != "" {
			prefix = lead + "- "
		}
		switch kid.kind {
		case kindScalar:
			w.WriteString(prefix)
			textScalar(w, kid.scalar, indent+2)
		case kindObject:
			textObject(w, kid, indent+2, prefix)
		case kindArray:
			textArray(w, kid, indent+2, prefix)
		}
	}
}

// textMember writes what follows "label:".
func textMember(w *boundedWriter, kid *node, indent int) {
	switch {
	case kid.kind == kindScalar:
		w.WriteString(" ")
		textScalar(w, kid.scalar, indent+2)
	case len(kid.kids) == 0 && kid.kind == kindObject:
		w.WriteString(" (empty)\n")
	case len(kid.kids) == 0:
		w.WriteString(" (none)\n")
	case kid.kind == kindObject:
		w.WriteString("\n")
		textObject(w, kid, indent+2, "")
	default:
		w.WriteString("\n")
		textArray(w, kid, indent+2, "")
	}
}

func firstLine(lead string, indent int) string {
	if lead != "" {
		return lead
	}
	return strings.Repeat(" ", indent)
}

// textScalar writes a value; one with line breaks becomes a block
// indented at indent below a "|".
func textScalar(w *boundedWriter, s string, indent int) {
	s = displayText(s)
	if s == "" {
		w.WriteString(`""` + "\n")
		return
	}
	if !strings.Contains(s, "\n") {
		w.WriteString(s + "\n")
		return
	}
	w.WriteString("|\n")
	pad := strings.Repeat(" ", indent)
	for _, line := range strings.Split(s, "\n") {
		w.WriteString(pad + line + "\n")
	}
}

// htmlTree renders n as nested lists, every text HTML-escaped.
func htmlTree(w *boundedWriter, n *node) {
	switch n.kind {
	case kindScalar:
		htmlScalar(w, n.scalar)
	case kindObject:
		if len(n.kids) == 0 {
			w.WriteString("<em>(empty)</em>")
			return
		}
		w.WriteString("<ul>")
		for i, kid := range n.kids {
			w.WriteString("<li><strong>" + html.EscapeString(oneLine(n.labels[i])) + ":</strong> ")
			htmlTree(w, kid)
			w.WriteString("</li>\n")
		}
		w.WriteString("</ul>")
	case kindArray:
		if len(n.kids) == 0 {
			w.WriteString("<em>(none)</em>")
			return
		}
		w.WriteString("<ol>")
		for _, kid := range n.kids {
			w.WriteString("<li>")
			htmlTree(w, kid)
			w.WriteString("</li>\n")
		}
		w.WriteString("</ol>")
	}
}

func htmlScalar(w *boundedWriter, s string) {
	s = displayText(s)
	switch {
	case s == "":
		w.WriteString(`<em>""</em>`)
	case strings.Contains(s, "\n"):
		w.WriteString(`<pre style="white-space:pre-wrap;margin:0">` + html.EscapeString(s) + "</pre>")
	default:
		w.WriteString(html.EscapeString(s))
	}
}
