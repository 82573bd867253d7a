package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/agentry/agentry/internal/amtp"
	"github.com/agentry/agentry/internal/gateway"
	"github.com/agentry/agentry/internal/schema"
)

// The schema registry's admin API: POST/GET /v1/admin/schemas,
// GET/PUT/DELETE /v1/admin/schemas/{id}, POST /v1/admin/schemas/{id}/validate.

// schemaBody is POST's body; PUT takes the JSON Schema document itself.
type schemaBody struct {
	ID     string          `json:"id"`
	Schema json.RawMessage `json:"schema"`
}

func (h *Handler) createSchema(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	body, err := readBody(w, r, schema.MaxSchemaSize+4096)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var req schemaBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.ID == "" || len(req.Schema) == 0 {
		h.writeError(w, r, amtp.Errorf(amtp.CodeInvalidMessageFormat, "a schema registration is a JSON object {id, schema}"))
		return
	}
	h.putSchema(w, r, p, req.ID, req.Schema)
}

func (h *Handler) replaceSchema(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	body, err := readBody(w, r, schema.MaxSchemaSize+1)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.putSchema(w, r, p, r.PathValue("id"), body)
}

func (h *Handler) putSchema(w http.ResponseWriter, r *http.Request, p gateway.Principal, id string, doc json.RawMessage) {
	rec, created, err := h.svc.PutSchema(r.Context(), p, id, doc)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, rec)
}

func (h *Handler) listSchemas(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	list, err := h.svc.ListSchemas(r.Context(), p)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"schemas": list})
}

func (h *Handler) getSchema(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	rec, err := h.svc.GetSchema(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (h *Handler) deleteSchema(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.svc.DeleteSchema(r.Context(), p, r.PathValue("id")); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// validateSchema answers 200 with {valid, schema, validation_errors}: a
// payload that does not match is the answer asked for, not an error.
func (h *Handler) validateSchema(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	body, err := readBody(w, r, h.max)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	res, err := h.svc.ValidateAgainst(r.Context(), p, r.PathValue("id"), body)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"valid": res.Valid, "schema": res.Schema, "validation_errors": res.Errors, "truncated": res.Truncated})
}
