// Package httpapi is the one HTTP handler of Agentry's REST API. The local
// server serves it with net/http and the api Lambda wraps it with
// aws-lambda-go-api-proxy; no request handling exists anywhere else.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/adapter/observe/logctx"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Options configures the handler.
type Options struct {
	Version      string // reported by /healthz and in User-Agent
	Logger       *slog.Logger
	MaxAdminBody int64 // bound on admin request bodies, default 64 KiB
	// Ready is /readyz's "store" check; ReadyChecks are its others
	// (readiness.go).
	Ready       func(ctx context.Context) error
	ReadyChecks []ReadyCheck
	// Refused hears of each message submission answered with an AMTP
	// error, with its code (a metric); nil: nobody does.
	Refused func(ctx context.Context, code amtp.Code)
	// Live fails /healthz: for a process that cannot recover without a
	// restart (nil: always live).
	Live func(ctx context.Context) error
	// Identity is what the transport proves about callers beyond API
	// keys: OAuth tokens and client certificates. nil: neither.
	Identity Identity
	// BodyBudget bounds the bytes of request bodies held in memory at
	// once (DefaultBodyBudget when 0, and never less than one message of
	// the maximum size). A request that finds no room waits briefly and
	// is then answered 503 with Retry-After. Anonymous callers share half.
	BodyBudget int64
}

// Identity is the transport's side of authentication, which differs by
// runtime: the local process verifies JWTs and TLS client certificates
// itself, while on AWS API Gateway has done both and the request context
// carries the result.
type Identity interface {
	// Claims verifies the bearer token of a request under OAuthPrefix.
	// It answers an *amtp.Error for a token it refuses.
	Claims(r *http.Request, token string) (gateway.TokenClaims, error)
	// PeerNames are the names of the verified client certificate the
	// caller presented; nil when there is none.
	PeerNames(r *http.Request) []string
}

// OAuthPrefix is where OAuth 2.0 clients call the API: the same routes
// under /oauth (POST /oauth/v1/messages, …). A separate prefix, because on
// AWS the HTTP API's JWT authorizer guards a route as a whole and agent
// keys and other gateways must still reach the unprefixed ones.
const OAuthPrefix = "/oauth"

// Handler serves the REST API.
type Handler struct {
	auth      Authenticator
	submit    Submitter
	read      Reader
	inbox     Mailbox
	agents    AgentAdmin
	schemas   SchemaAdmin
	workflows WorkflowReader
	dir       Directory
	dead      DeadLetterAdmin
	hooks     WebhookAdmin
	domain    string
	opt       Options
	log       *slog.Logger
	mux       *http.ServeMux
	max       int64
	budget    *bodyBudget
	root      http.Handler
	routes    []Route // what route registered, for Routes
}

// New builds the handler.
func New(g Gateway, opt Options) *Handler {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.MaxAdminBody <= 0 {
		opt.MaxAdminBody = 64 << 10
	}
	if opt.Version == "" {
		opt.Version = "dev"
	}
	cfg := g.Config()
	h := &Handler{auth: g, submit: g, read: g, inbox: g, agents: g, schemas: g, workflows: g, dir: g, dead: g, hooks: g, domain: cfg.Domain,
		opt: opt, log: opt.Logger, mux: http.NewServeMux(), max: cfg.MaxMessageBytes}
	if opt.BodyBudget <= 0 {
		opt.BodyBudget = DefaultBodyBudget
	}
	// Room for one maximum-size message from anyone: anonymous callers
	// get half the budget.
	h.budget = newBodyBudget(max(opt.BodyBudget, 2*(h.max+1)))
	// Routes are registered without methods so that every 405 goes through
	// our own error body (ServeMux's built-in 405 is plain text).
	h.route("/v1/messages", methods{"POST": h.postMessage, "GET": h.listMessages})
	h.route("/v1/messages/{id}", methods{"GET": h.getMessage})
	h.route("/v1/messages/{id}/status", methods{"GET": h.getStatus})
	h.route("/v1/workflows/{id}", methods{"GET": h.getWorkflow})
	h.route("/v1/inbox/{recipient}", methods{"GET": h.getInbox})
	h.route("/v1/inbox/{recipient}/{id}", methods{"DELETE": h.ackInbox})
	h.route("/v1/discovery/agents", methods{"GET": h.discoverAgents})
	h.route("/v1/capabilities/{domain}", methods{"GET": h.capabilities})
	h.route("/v1/admin/agents", methods{"POST": h.registerAgent, "GET": h.listAgents})
	h.route("/v1/admin/agents/{address}", methods{"GET": h.getAgent, "DELETE": h.deleteAgent})
	h.route("/v1/admin/agents/{address}/rotate-key", methods{"POST": h.rotateAgentKey})
	h.route("/v1/admin/schemas", methods{"POST": h.createSchema, "GET": h.listSchemas})
	h.route("/v1/admin/schemas/{id}", methods{"GET": h.getSchema, "PUT": h.replaceSchema, "DELETE": h.deleteSchema})
	h.route("/v1/admin/schemas/{id}/validate", methods{"POST": h.validateSchema})
	h.route("/v1/admin/dead-letters", methods{"GET": h.listDeadLetters})
	h.route("/v1/admin/dead-letters/redrive", methods{"POST": h.redriveDeadLetters})
	h.route("/v1/admin/dead-letters/{id}", methods{"GET": h.getDeadLetter})
	h.route("/v1/admin/dead-letters/{id}/redrive", methods{"POST": h.redriveDeadLetter})
	h.route("/v1/webhooks", methods{"POST": h.createWebhook, "GET": h.listWebhooks})
	h.route("/v1/webhooks/{id}", methods{"GET": h.getWebhook, "DELETE": h.deleteWebhook})
	h.route("/.well-known/amtp", methods{"GET": h.wellKnown})
	h.route("/v1/openapi.json", methods{"GET": h.serveAPIDocument(loadAPIDocument())})
	for _, p := range []string{"/healthz", "/health"} {
		h.route(p, methods{"GET": h.health})
	}
	for _, p := range []string{"/readyz", "/ready"} {
		h.route(p, methods{"GET": h.ready})
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, amtp.Errorf(amtp.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	h.root = h.middleware(h.mux)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.root.ServeHTTP(w, r) }

type methods map[string]func(http.ResponseWriter, *http.Request)

func (h *Handler) route(pattern string, m methods) {
	if strings.HasSuffix(pattern, "/") {
		// ServeMux would answer the path without the slash itself, with
		// a redirect and an HTML body.
		panic("httpapi: route " + pattern + " ends in a slash")
	}
	allowed := make([]string, 0, len(m)+1)
	for k := range m {
		allowed = append(allowed, k)
	}
	if _, ok := m["GET"]; ok {
		allowed = append(allowed, "HEAD")
	}
	// Sorted: the same Allow header on every call (map order is random).
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	h.routes = append(h.routes, Route{Pattern: pattern, Methods: slices.DeleteFunc(slices.Clone(allowed), isHead)})
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		fn, ok := m[method]
		if !ok {
			w.Header().Set("Allow", allow)
			h.writeError(w, r, amtp.Errorf(amtp.CodeMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow).WithDetail("allowed", allowed))
			return
		}
		fn(w, r)
	})
}

// ---- middleware ----

// The request id lives in the context under logctx's key (a stdlib-only
// leaf) rather than one of ours, so that every line the gateway and the
// Immediate Path log with the request's context carries it too.
func requestID(r *http.Request) string { return logctx.RequestID(r.Context()) }

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (h *Handler) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Header names in canonical form: any other spelling is
		// canonicalised again, into a new string, on every request.
		rid := r.Header.Get("X-Request-Id")
		if !validRequestID(rid) {
			// Built in one buffer: one allocation, not two.
			var buf [40]byte
			rid = string(amtp.AppendUUIDv7(append(buf[:0], "req_"...)))
		}
		r = r.WithContext(logctx.WithRequestID(r.Context(), rid))
		w.Header().Set("X-Request-Id", rid)
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				h.log.Error("panic in handler", "request_id", rid, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				h.writeInternal(w, r)
			}
		}()
		if !canonicalPath(r.URL.Path) {
			h.writeError(w, r, errNotCanonical())
			return
		}
		if path, rawPath, ok := belowOAuthPrefix(r.URL); ok {
			r = r.Clone(context.WithValue(r.Context(), oauthKey{}, true))
			r.URL.Path, r.URL.RawPath = path, rawPath
		}
		if v := r.Header.Get("X-Amtp-Version"); v != "" && !amtp.SupportedVersionHeader(v) {
			h.writeError(w, r, amtp.Errorf(amtp.CodeUnsupportedVersion, "X-AMTP-Version %q is not supported; this gateway speaks 1.x", v).WithDetail("supported", []string{amtp.Version}))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type oauthKey struct{}

func viaOAuth(r *http.Request) bool { v, _ := r.Context().Value(oauthKey{}).(bool); return v }

// principal authenticates the request: its bearer token (an agent or
// admin key, or under OAuthPrefix an OAuth token) or its X-Admin-Key, else
// the anonymous caller with whatever client certificate it presented.
func (h *Handler) principal(r *http.Request) (gateway.Principal, error) {
	oauth := viaOAuth(r)
	if oauth && h.opt.Identity == nil {
		return gateway.Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "OAuth is not enabled on this gateway")
	}
	auth := r.Header.Get("Authorization")
	if key := strings.TrimSpace(r.Header.Get("X-Admin-Key")); key != "" {
		return h.adminByHeader(r, key, auth)
	}
	if auth == "" {
		if oauth {
			return gateway.Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "Authorization must be: Bearer <OAuth access token>")
		}
		p := gateway.Principal{Kind: gateway.Anonymous}
		if h.opt.Identity != nil {
			p.PeerNames = h.opt.Identity.PeerNames(r)
		}
		return p, nil
	}
	scheme, token, ok := strings.Cut(auth, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return gateway.Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "Authorization must be: Bearer <key>")
	}
	if oauth {
		c, err := h.opt.Identity.Claims(r, token)
		if err != nil {
			return gateway.Principal{}, err
		}
		return h.auth.AuthenticateClaims(r.Context(), c)
	}
	return h.auth.Authenticate(r.Context(), token)
}

// adminByHeader authenticates X-Admin-Key, where the reference gateway's
// tools present the admin key. It is the admin's only: an agent's key
// there is refused like a wrong one. An Authorization header next to it
// must carry the same key; two different credentials are refused rather
// than one of them chosen.
func (h *Handler) adminByHeader(r *http.Request, key, auth string) (gateway.Principal, error) {
	if viaOAuth(r) {
		return gateway.Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "under %s the caller is the OAuth token's; X-Admin-Key is not accepted there", OAuthPrefix)
	}
	if auth != "" {
		scheme, token, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) != key {
			return gateway.Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "X-Admin-Key and Authorization carry different credentials; give one")
		}
	}
	return h.auth.AuthenticateAdmin(r.Context(), key)
}

// readBody reads a request body of at most max bytes within the body
// budget; a declared or actual larger body is 413 without reading it all.
// The caller calls release once it no longer uses the body.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, p gateway.Principal, max int64) (body []byte, release func(), err error) {
	g := h.budget.open(p)
	br := &bodyReader{w: w, r: r, g: g, max: max}
	if body, err = br.all(); err != nil {
		g.release()
		return nil, nil, err
	}
	return body, g.release, nil
}

// adminBody authenticates an admin request and then reads its body of
// at most max bytes: a caller who is not the admin costs no body. On
// failure it has answered the request and ok is false.
func (h *Handler) adminBody(w http.ResponseWriter, r *http.Request, max int64) (p gateway.Principal, body []byte, release func(), ok bool) {
	p, err := h.principal(r)
	if err == nil {
		err = gateway.RequireAdmin(p)
	}
	if err == nil {
		body, release, err = h.readBody(w, r, p, max)
	}
	if err != nil {
		h.writeError(w, r, err)
		return p, nil, nil, false
	}
	return p, body, release, true
}

// ---- messages ----

type acceptAnswer struct {
	MessageID  string                    `json:"message_id"`
	Status     gateway.MessageState      `json:"status"`
	Recipients []gateway.RecipientStatus `json:"recipients"`
	Response   json.RawMessage           `json:"response,omitempty"`
}

func (h *Handler) postMessage(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > h.max {
		h.refuse(w, r, tooLarge(h.max))
		return
	}
	p, err := h.principal(r)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	g := h.budget.open(p)
	defer g.release()
	body, err := h.readMessage(w, r, p, g)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	res, err := h.submit.Accept(r.Context(), p, body)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	ans := acceptAnswer{MessageID: res.MessageID, Status: res.Status, Recipients: res.Recipients, Response: res.Reply}
	if data, ok := appendAcceptAnswer(make([]byte, 0, 64+192*len(ans.Recipients)), &ans); ok {
		writeRaw(w, acceptStatus(res.Outcome), data)
		return
	}
	h.writeJSON(w, r, acceptStatus(res.Outcome), ans)
}

func (h *Handler) getMessage(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	raw, err := h.read.GetMessage(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeRaw(w, http.StatusOK, raw)
}

func (h *Handler) getStatus(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	v, err := h.read.Status(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, v)
}

func (h *Handler) getWorkflow(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	v, err := h.workflows.WorkflowView(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, v)
}

func queryLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, amtp.FieldError("limit", "limit must be a number from 1 to 1000")
	}
	return n, nil
}

func (h *Handler) addressFilter(field, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if !strings.Contains(v, "@") {
		v += "@" + h.domain
	}
	a, err := amtp.ParseAddress(v)
	if err != nil {
		return "", amtp.FieldError(field, "%s must be an address", field)
	}
	return a.Key(), nil
}

func (h *Handler) listMessages(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	var mq gateway.MessageQuery
	if mq.Limit, err = queryLimit(r); err != nil {
		h.writeError(w, r, err)
		return
	}
	if s := q.Get("status"); s != "" {
		switch gateway.MessageState(s) {
		case gateway.MessageAccepted, gateway.MessageDelivering, gateway.MessageDelivered, gateway.MessagePartiallyDelivered, gateway.MessageFailed:
			mq.Status = gateway.MessageState(s)
		default:
			h.writeError(w, r, amtp.FieldError("status", "status must be accepted, delivering, delivered, partially_delivered or failed"))
			return
		}
	}
	if mq.Sender, err = h.addressFilter("sender", q.Get("sender")); err != nil {
		h.writeError(w, r, err)
		return
	}
	if mq.Recipient, err = h.addressFilter("recipient", q.Get("recipient")); err != nil {
		h.writeError(w, r, err)
		return
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			h.writeError(w, r, amtp.FieldError("since", "since must be an RFC 3339 time"))
			return
		}
		mq.Since = t.UTC()
	}
	mq.Cursor = q.Get("cursor")
	list, next, err := h.read.ListMessages(r.Context(), p, mq)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []gateway.MessageSummary{}
	}
	h.writeJSON(w, r, http.StatusOK, map[string]any{"messages": list, "next_cursor": nullable(next)})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ---- inbox ----

func (h *Handler) getInbox(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	limit, err := queryLimit(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	msgs, next, err := h.inbox.Inbox(r.Context(), p, r.PathValue("recipient"), limit, r.URL.Query().Get("cursor"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if msgs == nil {
		msgs = []json.RawMessage{}
	}
	h.writeJSON(w, r, http.StatusOK, map[string]any{"messages": msgs, "next_cursor": nullable(next)})
}

func (h *Handler) ackInbox(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	if err := h.inbox.Ack(r.Context(), p, r.PathValue("recipient"), id); err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, map[string]string{"message_id": id, "status": "acknowledged"})
}

// ---- discovery ----

func (h *Handler) discoverAgents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := gateway.AgentFilter{Schema: q.Get("schema")}
	switch m := q.Get("delivery_mode"); m {
	case "", string(gateway.ModePush), string(gateway.ModePull):
		f.DeliveryMode = gateway.DeliveryMode(m)
	default:
		h.writeError(w, r, amtp.FieldError("delivery_mode", "delivery_mode must be push or pull"))
		return
	}
	agents, err := h.agents.DiscoverAgents(r.Context(), f)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, map[string]any{"domain": h.domain, "agents": agents, "count": len(agents)})
}

func (h *Handler) capabilities(w http.ResponseWriter, r *http.Request) {
	route, err := h.dir.Capabilities(r.Context(), r.PathValue("domain"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, map[string]any{
		"domain": route.Domain, "amtp": route.Found, "version": "1.0", "gateway": route.Gateway,
		"auth": route.Auth, "max_size": route.MaxSize, "schemas": route.Schemas, "mx": route.MX,
		"invalid": route.Invalid,
	})
}

func (h *Handler) wellKnown(w http.ResponseWriter, r *http.Request) {
	own := h.dir.OwnRoute()
	h.writeJSON(w, r, http.StatusOK, map[string]any{
		"gateway": own.Gateway, "versions": []string{amtp.Version}, "max_size": own.MaxSize, "auth": own.Auth,
	})
}

// ---- admin ----

func (h *Handler) registerAgent(w http.ResponseWriter, r *http.Request) {
	p, body, release, ok := h.adminBody(w, r, h.opt.MaxAdminBody)
	if !ok {
		return
	}
	defer release()
	var req registerBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		h.writeError(w, r, amtp.Errorf(amtp.CodeInvalidMessageFormat, "registration must be a JSON object {address, delivery_mode, webhook_url? (or push_target?), supported_schemas?, headers?}: %s", err.Error()))
		return
	}
	if req.APIKey != "" {
		h.writeError(w, r, amtp.FieldError("api_key", "the gateway issues API keys; leave api_key out"))
		return
	}
	if req.RequiresSchema {
		h.writeError(w, r, amtp.FieldError("requires_schema", "requires_schema is not supported; supported_schemas says what the agent takes"))
		return
	}
	reg, err := h.agents.RegisterAgent(r.Context(), p, req.RegisterRequest)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	h.writeJSON(w, r, http.StatusCreated, reg)
}

// registerBody is a registration as clients send it. The reference
// gateway's agentry-admin sends every field of its agent record, those it
// cannot know empty: they are accepted empty and refused otherwise.
type registerBody struct {
	gateway.RegisterRequest
	APIKey         string          `json:"api_key"`
	RequiresSchema bool            `json:"requires_schema"`
	CreatedAt      json.RawMessage `json:"created_at"`
	LastAccess     json.RawMessage `json:"last_access"`
}

func (h *Handler) rotateAgentKey(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	reg, err := h.agents.RotateAgentKey(r.Context(), p, r.PathValue("address"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	h.writeJSON(w, r, http.StatusOK, reg)
}

func (h *Handler) listAgents(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	list, err := h.agents.ListAgents(r.Context(), p)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, map[string]any{"agents": list, "count": len(list)})
}

func (h *Handler) getAgent(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	a, err := h.agents.GetAgent(r.Context(), p, r.PathValue("address"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, a)
}

func (h *Handler) deleteAgent(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.agents.DeleteAgent(r.Context(), p, r.PathValue("address")); err != nil {
		h.writeError(w, r, err)
		return
	}
	// 200 with a body rather than 204: the public Python SDK's stop()
	// counts only 200, 201 and 202 as success, and so does the reference
	// gateway's admin tool.
	h.writeJSON(w, r, http.StatusOK, map[string]string{"address": r.PathValue("address"), "status": "deleted"})
}

// ---- health ----

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	if h.opt.Live != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := h.opt.Live(ctx); err != nil {
			h.log.Error("not live", "err", err)
			h.writeError(w, r, amtp.Errorf(amtp.CodeTemporaryFailure, "not live: storage failed"))
			return
		}
	}
	h.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok", "version": h.opt.Version, "domain": h.domain})
}
