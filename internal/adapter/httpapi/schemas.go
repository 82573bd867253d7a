package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// The schema registry's admin API: POST/GET /v1/admin/schemas,
// GET/PUT/DELETE /v1/admin/schemas/{id}, POST /v1/admin/schemas/{id}/validate.

// schemaBody is POST's body. The document is under "schema" or, as the
// reference gateway's agentry-admin sends it, "definition"; "force" (which
// that tool sends to replace) changes nothing, POST replaces anyway. PUT
// takes the JSON Schema document itself, or this body (see wrapped).
type schemaBody struct {
	ID         string          `json:"id"`
	Schema     json.RawMessage `json:"schema"`
	Definition json.RawMessage `json:"definition"`
	Force      bool            `json:"force"`
}

// document is the JSON Schema the body carries under either name; both
// given, they must be the same document.
func (b *schemaBody) document() (json.RawMessage, error) {
	switch {
	case len(b.Definition) == 0:
		return b.Schema, nil
	case len(b.Schema) == 0:
		return b.Definition, nil
	}
	var x, y bytes.Buffer
	if json.Compact(&x, b.Schema) != nil || json.Compact(&y, b.Definition) != nil || !bytes.Equal(x.Bytes(), y.Bytes()) {
		return nil, amtp.FieldError("definition", "schema and definition are two names for the same document; give one of them")
	}
	return b.Schema, nil
}

// wrapped reads a PUT body that is a schemaBody rather than the document:
// a JSON object whose members are all schemaBody's, one of them schema
// or definition. A JSON Schema made of those keywords alone would be one
// that constrains nothing, so no real document is mistaken for it.
func wrapped(body []byte) (*schemaBody, bool) {
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil {
		return nil, false
	}
	_, s := members["schema"]
	_, d := members["definition"]
	if !s && !d {
		return nil, false
	}
	for k := range members {
		switch k {
		case "id", "schema", "definition", "force":
		default:
			return nil, false
		}
	}
	var b schemaBody
	if json.Unmarshal(body, &b) != nil {
		return nil, false
	}
	return &b, true
}

func (h *Handler) createSchema(w http.ResponseWriter, r *http.Request) {
	p, body, release, ok := h.adminBody(w, r, schema.MaxSchemaSize+4096)
	if !ok {
		return
	}
	defer release()
	var req schemaBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.ID == "" || len(req.Schema) == 0 && len(req.Definition) == 0 {
		h.writeError(w, r, amtp.Errorf(amtp.CodeInvalidMessageFormat, "a schema registration is a JSON object {id, schema} (or {id, definition})"))
		return
	}
	doc, err := req.document()
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.putSchema(w, r, p, req.ID, doc)
}

func (h *Handler) replaceSchema(w http.ResponseWriter, r *http.Request) {
	p, body, release, ok := h.adminBody(w, r, schema.MaxSchemaSize+4096)
	if !ok {
		return
	}
	defer release()
	id := r.PathValue("id")
	if b, ok := wrapped(body); ok {
		if b.ID != "" && b.ID != id {
			h.writeError(w, r, amtp.FieldError("id", "the body names schema %s, the path %s", b.ID, id))
			return
		}
		doc, err := b.document()
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		body = doc
	}
	h.putSchema(w, r, p, id, body)
}

func (h *Handler) putSchema(w http.ResponseWriter, r *http.Request, p gateway.Principal, id string, doc json.RawMessage) {
	rec, created, err := h.schemas.PutSchema(r.Context(), p, id, doc)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	h.writeJSON(w, r, status, rec)
}

func (h *Handler) listSchemas(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	list, err := h.schemas.ListSchemas(r.Context(), p)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, map[string]any{"schemas": list})
}

func (h *Handler) getSchema(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	rec, err := h.schemas.GetSchema(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, rec)
}

func (h *Handler) deleteSchema(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.schemas.DeleteSchema(r.Context(), p, r.PathValue("id")); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// validateSchema answers 200 with {valid, schema, validation_errors}: a
// payload that does not match is the answer asked for, not an error.
func (h *Handler) validateSchema(w http.ResponseWriter, r *http.Request) {
	p, body, release, ok := h.adminBody(w, r, h.max)
	if !ok {
		return
	}
	defer release()
	res, err := h.schemas.ValidateAgainst(r.Context(), p, r.PathValue("id"), body)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, map[string]any{"valid": res.Valid, "schema": res.Schema, "validation_errors": res.Errors, "truncated": res.Truncated})
}
