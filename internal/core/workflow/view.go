package workflow

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// View is a workflow in the draft's §7.2.1 shape: the body of
// GET /v1/workflows/{id} and the payload of the workflow_result message.
// Members beyond the draft's (type, initiator, deadline, branches,
// required, error, responded_at) only add detail.
type View struct {
	WorkflowID   string            `json:"workflow_id"`
	Type         string            `json:"type"`
	Initiator    string            `json:"initiator"`
	Status       Status            `json:"status"`
	CreatedAt    string            `json:"created_at"`
	UpdatedAt    string            `json:"updated_at"`
	Deadline     string            `json:"deadline"`
	Branches     []string          `json:"branches,omitempty"`
	Participants []ParticipantView `json:"participants"`
}

// ParticipantView is one participant in a View. Deadline is shown only
// while the participant is still expected to answer, as in the draft.
type ParticipantView struct {
	Address     string            `json:"address"`
	Status      ParticipantStatus `json:"status"`
	Required    bool              `json:"required"`
	Response    json.RawMessage   `json:"response,omitempty"`
	Error       json.RawMessage   `json:"error,omitempty"`
	RespondedAt string            `json:"responded_at,omitempty"`
	Deadline    string            `json:"deadline,omitempty"`
}

// View renders s for clients.
func (s State) View() View {
	v := View{
		WorkflowID:   s.WorkflowID,
		Type:         s.Type,
		Initiator:    s.Initiator,
		Status:       s.Status,
		CreatedAt:    amtp.FormatTime(s.CreatedAt),
		UpdatedAt:    amtp.FormatTime(s.UpdatedAt),
		Deadline:     amtp.FormatTime(s.Deadline),
		Branches:     append([]string(nil), s.Branches...),
		Participants: make([]ParticipantView, 0, len(s.Participants)),
	}
	for _, p := range s.Participants {
		pv := ParticipantView{
			Address:  p.Address,
			Status:   p.Status,
			Required: p.Required,
			Response: p.Response,
			Error:    p.Error,
		}
		if !p.RespondedAt.IsZero() {
			pv.RespondedAt = amtp.FormatTime(p.RespondedAt)
		}
		if !s.Status.Terminal() && (p.Status == ParticipantPending || p.Status == ParticipantAwaiting) {
			pv.Deadline = v.Deadline
		}
		v.Participants = append(v.Participants, pv)
	}
	return v
}

// ResultMessage is the workflow_result message that tells the initiator how
// a finished workflow ended. It has been through amtp.Parse, so it is valid
// as it leaves here. See the package documentation for the sender and the
// derived identifiers.
func ResultMessage(s State, gatewayDomain string, now time.Time) (*amtp.Message, error) {
	if !s.Status.Terminal() {
		return nil, fmt.Errorf("workflow %s: no result while %s", s.WorkflowID, s.Status)
	}
	if now.IsZero() {
		return nil, fmt.Errorf("workflow %s: result: no time given", s.WorkflowID)
	}
	domain, err := amtp.NormalizeDomain(gatewayDomain)
	if err != nil {
		return nil, fmt.Errorf("workflow %s: result: gateway domain %q: %w", s.WorkflowID, gatewayDomain, err)
	}
	var payload bytes.Buffer
	enc := json.NewEncoder(&payload)
	// Responses are stored already escaped (see storable); escaping again
	// here would only be a no-op that costs a pass.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s.View()); err != nil {
		return nil, fmt.Errorf("workflow %s: result payload: %w", s.WorkflowID, err)
	}
	// The initiator and the workflow id together: a client-chosen message_id
	// is unique per sender only, and the result's sender is shared.
	sum := sha256.Sum256([]byte("agentry workflow result\x00" + s.Initiator + "\x00" + s.WorkflowID))
	m := &amtp.Message{
		Version:        amtp.Version,
		MessageID:      uuidV8(sum),
		IdempotencyKey: "wfr-" + hex.EncodeToString(sum[16:]),
		Timestamp:      norm(now),
		Sender:         "postmaster@" + domain,
		Recipients:     []string{s.Initiator},
		Subject:        "Workflow " + string(s.Status),
		InReplyTo:      s.WorkflowID,
		WorkflowID:     s.WorkflowID,
		ResponseType:   amtp.ResponseWorkflowResult,
		Payload:        bytes.TrimRight(payload.Bytes(), "\n"),
	}
	parsed, err := amtp.Parse(m.AppendJSON(nil), amtp.Limits{})
	if err != nil {
		return nil, fmt.Errorf("workflow %s: result message invalid: %w", s.WorkflowID, err)
	}
	return parsed, nil
}

// uuidV8 shapes the first 16 bytes of a hash as an RFC 9562 version 8
// (custom) UUID.
func uuidV8(sum [32]byte) string {
	var b [16]byte
	copy(b[:], sum[:16])
	b[6] = 0x80 | b[6]&0x0f
	b[8] = 0x80 | b[8]&0x3f
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
