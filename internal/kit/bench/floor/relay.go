package floor

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
)

// The relay floor is federation's own floor: the least two services on
// one machine must do to carry a signed JSON message from a client to a
// webhook through two domains. The first relay reads and decodes the
// body, signs it (ES256 over its SHA-256, as the Domain Signatures
// profile signs) and forwards it; the second reads and decodes it,
// verifies the signature and forwards it to the webhook; each answers 202
// once the next hop answered. Nothing is stored, nothing is queued and no
// DNS is asked, so the gap to the gateways is durability, discovery,
// validation and the asynchronous hand-over.
//
// It signs the body as received, not its RFC 8785 form: a relay that
// chose its own canonical form would be measuring a choice, not a floor.

// HeaderSignature carries the first relay's signature to the second.
const HeaderSignature = "X-Floor-Signature"

// HeaderMessageID names the message to the webhook, as the gateway's
// webhook-id header does.
const HeaderMessageID = "Webhook-Id"

// Relay is the two-hop chain served on loopback.
type Relay struct {
	URL           string // the first hop: POST messages here
	first, second *Server
}

// StartRelay serves the chain ending at webhook, each hop forwarding
// with client.
func StartRelay(webhook string, client *http.Client) (*Relay, error) {
	key, err := ecdsa.GenerateKey(ecdsaCurve(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("relay key: %w", err)
	}
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	second := Serve(l2, verifier(webhook, client, &key.PublicKey))
	l1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, errors.Join(err, second.Close())
	}
	first := Serve(l1, signer(second.URL+"/v1/messages", client, key))
	return &Relay{URL: first.URL + "/v1/messages", first: first, second: second}, nil
}

// Close stops both hops.
func (r *Relay) Close() error { return errors.Join(r.first.Close(), r.second.Close()) }

func signer(next string, client *http.Client, key *ecdsa.PrivateKey) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _, ok := readMessage(w, r)
		if !ok {
			return
		}
		sum := sha256.Sum256(body)
		rs, sr, err := ecdsa.Sign(rand.Reader, key, sum[:])
		if err != nil {
			http.Error(w, `{"error":"sign"}`, http.StatusInternalServerError)
			return
		}
		sig := make([]byte, 64) // P1363: r || s, 32 bytes each
		rs.FillBytes(sig[:32])
		sr.FillBytes(sig[32:])
		forward(w, r, client, next, body, map[string]string{HeaderSignature: base64.RawURLEncoding.EncodeToString(sig)})
	})
}

func verifier(next string, client *http.Client, pub *ecdsa.PublicKey) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, m, ok := readMessage(w, r)
		if !ok {
			return
		}
		sig, err := base64.RawURLEncoding.DecodeString(r.Header.Get(HeaderSignature))
		sum := sha256.Sum256(body)
		if err != nil || len(sig) != 64 ||
			!ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			http.Error(w, `{"error":"signature"}`, http.StatusForbidden)
			return
		}
		id, _ := m["message_id"].(string)
		forward(w, r, client, next, body, map[string]string{HeaderMessageID: id})
	})
}

// readMessage reads and decodes a bounded body, answering the error
// itself when it cannot.
func readMessage(w http.ResponseWriter, r *http.Request) ([]byte, map[string]any, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		http.Error(w, `{"error":"body"}`, http.StatusRequestEntityTooLarge)
		return nil, nil, false
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		http.Error(w, `{"error":"json"}`, http.StatusBadRequest)
		return nil, nil, false
	}
	return body, m, true
}

// forward posts body to next and answers 202 once next answered 2xx.
func forward(w http.ResponseWriter, r *http.Request, client *http.Client, next string, body []byte, headers map[string]string) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, next, bytes.NewReader(body))
	if err != nil {
		http.Error(w, `{"error":"forward"}`, http.StatusInternalServerError)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		http.Error(w, `{"error":"next hop"}`, http.StatusBadGateway)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		http.Error(w, `{"error":"next hop refused"}`, http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(accepted)
}

func ecdsaCurve() elliptic.Curve { return elliptic.P256() }
