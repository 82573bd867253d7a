package dynamo

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/adapter/dynamo/itemsize"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

type item = map[string]types.AttributeValue

// Key prefixes. Addresses in keys are lower-case, so that every lookup is
// case-insensitive; ids and idempotency keys are kept exactly.
const (
	pfxMessage   = "MSG#"
	skMessage    = "MSG"
	pfxRecipient = "RCPT#"
	pfxIdem      = "IDK#"  // idempotency record: the key's partition …
	pfxIdemFrom  = "FROM#" // … and the sender as its sort key
	pfxIdemOld   = "IDEM#" // the sender's partition, before records were spread (legacy.go)
	pfxIdemKey   = "KEY#"  // … with the key as its sort key
	pfxAgent     = "AGENT#"
	skAgent      = "AGENT"
	pfxAPIKey    = "APIKEY#"
	skAPIKey     = "APIKEY"

	// gsi1 partitions
	pfxFrom   = "FROM#"
	pfxTo     = "TO#"
	pkAgents  = "AGENTS"
	pfxDay    = "DAY#"   // gsi2
	pfxInbox  = "INBOX#" // gsi2
	dayLayout = "2006-01-02"
)

// Index names, so that each query reads as what it looks up.
const (
	gsiFrom   = awsres.GSI1
	gsiTo     = awsres.GSI1
	gsiAgents = awsres.GSI1
	gsiDay    = awsres.GSI2
	gsiInbox  = awsres.GSI2
)

// Attribute names. They are short because every byte of every name counts
// towards an item's size, and so towards its write units.
const (
	aPK  = awsres.AttrPK
	aSK  = awsres.AttrSK
	aTTL = awsres.AttrTTL
	aG1P = awsres.AttrGSI1PK
	aG1S = awsres.AttrGSI1SK
	aG2P = awsres.AttrGSI2PK
	aG2S = awsres.AttrGSI2SK

	// message
	aRaw    = "raw"  // B: the message JSON, when it fits
	aRawZ   = "rawz" // B: the message JSON deflated, when it fits and that is smaller (deflate.go)
	aBlob   = "blob" // S: s3blob reference, when it does not
	aFrom   = "from" // S: sender as given (also on the idempotency record)
	aTo     = "to"   // L of S: recipients as given, in order
	aSubj   = "subj"
	aOrigin = "orig"
	aVerif  = "sv"   // S: JSON of the sender verification (absent before it was recorded)
	aAt     = "at"   // S: accepted_at, RFC 3339 with nanoseconds
	aRN     = "rn"   // N: number of recipients with a status at accept
	aSpecs  = "rs"   // L of M: every recipient item as Accept writes it (specAttr)
	aOver   = "over" // S: JSON of recipient items, written before "rs" existed; read only
	aTok    = "tok"  // S: the acceptance's token, on its idempotency record too
	aShards = "ts"   // N: the TO# shards its recipient's item was keyed with; absent: items under MSG#<id> (messageRef.recipientKey)
	aVoided = "vt"   // SS: on a void message item, the tokens of the acceptances it stops

	// recipient
	aAddr   = "addr" // S: address as first stored
	aN      = "n"    // N: position in the message's order
	aStatus = "st"   // M: the status

	// idempotency record
	aKey     = "key"
	aMsgID   = "mid"
	aDigest  = "dig"
	aCreated = "cat"
	aPending = "pend"  // N: the owner's deadline, epoch ms after which a retry takes over
	aTasks   = "tasks" // S: JSON []gateway.Task, for a take-over to enqueue; records of the old layout only (legacy.go)
	aMarked  = "tq"    // N: the tasks are not known to be queued, where no recipient item can tell (completed)
	aSince   = "since" // N: on the layout marker, epoch seconds (legacy.go)

	// message
	aMsgTasks = "tk" // S: the acceptance's tasks (tasks.go), for a take-over to enqueue
)

// keyTime is the time in sort keys: fixed width and UTC, so that byte
// order is time order. Milliseconds are the precision the ports promise.
const keyTime = "2006-01-02T15:04:05.000Z"

func formatKeyTime(t time.Time) string { return t.UTC().Format(keyTime) }

// timeSK is the sort key of a message in every time-ordered index: its
// time, then its id, which breaks ties and makes the key unique.
func timeSK(t time.Time, id string) string { return formatKeyTime(t) + "#" + id }

// parseTimeSK splits a time sort key; the id part may be absent (a cursor
// at a day boundary).
func parseTimeSK(sk string) (time.Time, string, error) {
	if len(sk) < len(keyTime) {
		return time.Time{}, "", fmt.Errorf("sort key %q is too short", sk)
	}
	t, err := time.Parse(keyTime, sk[:len(keyTime)])
	if err != nil {
		return time.Time{}, "", fmt.Errorf("sort key %q: %w", sk, err)
	}
	rest := sk[len(keyTime):]
	if rest == "" {
		return t, "", nil
	}
	if rest[0] != '#' || len(rest) == 1 {
		return time.Time{}, "", fmt.Errorf("sort key %q has no id", sk)
	}
	return t, rest[1:], nil
}

func messageKey(id string) item { return key(pfxMessage+id, skMessage) }

func recipientKey(id, addr string) item {
	return key(pfxMessage+id, pfxRecipient+strings.ToLower(addr))
}

// idemKey is the key of the idempotency record of (sender, k): in the
// partition of the key, so that a sender's records are spread over as many
// partitions as it uses keys, rather than every submission of a busy
// sender writing one.
func idemKey(sender, k string) item {
	return key(pfxIdem+k, pfxIdemFrom+strings.ToLower(sender))
}

// oldIdemKey is where the same record was kept before: the sender's
// partition (legacy.go).
func oldIdemKey(sender, k string) item {
	return key(pfxIdemOld+strings.ToLower(sender), pfxIdemKey+k)
}

func agentKey(addr string) item { return key(pfxAgent+strings.ToLower(addr), skAgent) }

func apiKeyKey(hash string) item { return key(pfxAPIKey+strings.ToLower(hash), skAPIKey) }

func key(pk, sk string) item { return item{aPK: str(pk), aSK: str(sk)} }

// ---- attribute values ----

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// decimal is a number attribute holding a float, exactly as Go prints it
// shortest; DynamoDB keeps up to 38 significant digits.
func decimal(v float64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatFloat(v, 'g', -1, 64)}
}

func getDecimal(it item, name string) (float64, bool) {
	v, ok := it[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(v.Value, 64)
	return f, err == nil
}

func bin(v []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }

func strList(vs []string) types.AttributeValue {
	l := make([]types.AttributeValue, len(vs))
	for i, v := range vs {
		l[i] = str(v)
	}
	return &types.AttributeValueMemberL{Value: l}
}

func timeAttr(t time.Time) types.AttributeValue { return str(t.UTC().Format(time.RFC3339Nano)) }

// putStr sets a string attribute only when it has a value: DynamoDB
// refuses empty strings in key attributes, and absent costs nothing.
func putStr(it item, name, v string) {
	if v != "" {
		it[name] = str(v)
	}
}

func getStr(it item, name string) string {
	if v, ok := it[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getNum(it item, name string) (int64, bool) {
	v, ok := it[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

func getBin(it item, name string) []byte {
	if v, ok := it[name].(*types.AttributeValueMemberB); ok {
		return v.Value
	}
	return nil
}

func getStrList(it item, name string) []string {
	v, ok := it[name].(*types.AttributeValueMemberL)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(v.Value))
	for _, e := range v.Value {
		if s, ok := e.(*types.AttributeValueMemberS); ok {
			out = append(out, s.Value)
		}
	}
	return out
}

func getTime(it item, name string) (time.Time, error) {
	s := getStr(it, name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("attribute %s: %w", name, err)
	}
	return t, nil
}

// expired reports whether DynamoDB's TTL may delete the item already: its
// deletion lags by up to days, so readers hide such items themselves.
func expired(it item, now time.Time) bool {
	exp, ok := getNum(it, aTTL)
	return ok && exp <= now.Unix()
}

// ttl is the TTL attribute's value for a deadline: epoch seconds, rounded
// up so that an item never expires before its deadline.
func ttl(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// ---- statuses ----

// Status map field names.
const (
	stState     = "s"
	stAttempts  = "a"
	stUpdated   = "u"
	stNextRetry = "nr"
	stDelivered = "d"
	stErrCode   = "ec"
	stErrMsg    = "em"
	stVia       = "via"
	stResponse  = "resp"
)

// statusAttr encodes a status without its address, which the recipient
// item keeps separately in the spelling it was first stored with.
func statusAttr(r gateway.RecipientStatus) types.AttributeValue {
	m := item{
		stState:    str(string(r.Status)),
		stAttempts: num(int64(r.Attempts)),
		stUpdated:  timeAttr(r.UpdatedAt),
	}
	if r.NextRetry != nil {
		m[stNextRetry] = timeAttr(*r.NextRetry)
	}
	if r.DeliveredAt != nil {
		m[stDelivered] = timeAttr(*r.DeliveredAt)
	}
	putStr(m, stErrCode, r.ErrorCode)
	putStr(m, stErrMsg, r.ErrorMessage)
	putStr(m, stVia, r.Via)
	if len(r.Response) > 0 {
		m[stResponse] = bin(r.Response)
	}
	putHistory(m, r.History)
	return &types.AttributeValueMemberM{Value: m}
}

func decodeStatus(addr string, av types.AttributeValue) (gateway.RecipientStatus, error) {
	r := gateway.RecipientStatus{Address: addr}
	mv, ok := av.(*types.AttributeValueMemberM)
	if !ok {
		return r, fmt.Errorf("status of %s is not a map", addr)
	}
	m := mv.Value
	r.Status = gateway.State(getStr(m, stState))
	if n, ok := getNum(m, stAttempts); ok {
		r.Attempts = int(n)
	}
	var err error
	if r.UpdatedAt, err = getTime(m, stUpdated); err != nil {
		return r, fmt.Errorf("status of %s: %w", addr, err)
	}
	for _, f := range []struct {
		name string
		dst  **time.Time
	}{{stNextRetry, &r.NextRetry}, {stDelivered, &r.DeliveredAt}} {
		if _, ok := m[f.name]; !ok {
			continue
		}
		t, err := getTime(m, f.name)
		if err != nil {
			return r, fmt.Errorf("status of %s: %w", addr, err)
		}
		*f.dst = &t
	}
	r.ErrorCode = getStr(m, stErrCode)
	r.ErrorMessage = getStr(m, stErrMsg)
	r.Via = getStr(m, stVia)
	if b := getBin(m, stResponse); len(b) > 0 {
		r.Response = json.RawMessage(b)
	}
	if r.History, err = getHistory(m); err != nil {
		return r, fmt.Errorf("status of %s: %w", addr, err)
	}
	return r, nil
}

// recipientSpec is everything a recipient item is made from. The message
// item carries the specs of all its recipients (aSpecs), because Accept
// writes the recipient items only after the message item: until they
// exist, readers take the statuses from there, and whoever finds an item
// missing writes it from there.
type recipientSpec struct {
	Address string                  `json:"addr"`
	N       int64                   `json:"n"`
	Status  gateway.RecipientStatus `json:"status"`
	// Indexed: the address is one of the message's recipients, so the
	// item appears in its TO# listing (recipients added later do not).
	Indexed bool `json:"indexed,omitempty"`
	// Inbox: filed in the recipient's inbox at this time.
	Inbox *time.Time `json:"inbox,omitempty"`
}

// specsAttr encodes the specs of a message's recipients at accept, in
// order, for the message item with recipients to accepted at `at`. Each is
// a map holding only what the message item does not already say: the
// position is the list index, every such recipient is indexed, the address
// is left out when it is to[i], the status time when it is `at`, and an
// inbox entry filed at `at` is a flag. A spec then takes some 20 bytes
// instead of about 150 as JSON, and the message item's write units are
// what it saves.
func specsAttr(specs []recipientSpec, to []string, at time.Time) types.AttributeValue {
	l := make([]types.AttributeValue, len(specs))
	for i, r := range specs {
		st := statusAttr(r.Status).(*types.AttributeValueMemberM)
		if r.Status.UpdatedAt.Equal(at) {
			delete(st.Value, stUpdated)
		}
		m := item{specStatus: st}
		if i >= len(to) || to[i] != r.Address {
			m[specAddr] = str(r.Address)
		}
		switch {
		case r.Inbox == nil:
		case r.Inbox.Equal(at):
			m[specInbox] = &types.AttributeValueMemberBOOL{Value: true}
		default:
			m[specInbox] = timeAttr(*r.Inbox)
		}
		l[i] = &types.AttributeValueMemberM{Value: m}
	}
	return &types.AttributeValueMemberL{Value: l}
}

// Field names of a spec in aSpecs.
const (
	specAddr   = "a"
	specStatus = "st"
	specInbox  = "ib"
)

// hasSpecs reports whether a message item carries recipient specs.
func hasSpecs(msg item) bool {
	_, ok := msg[aSpecs]
	return ok || getStr(msg, aOver) != ""
}

// decodeSpecs reads the specs a message item carries: aSpecs (which needs
// the item's aTo and aAt too), or the JSON of aOver that items written
// before aSpecs existed have.
func decodeSpecs(msg item) ([]recipientSpec, error) {
	if s := getStr(msg, aOver); s != "" {
		var over []recipientSpec
		if err := json.Unmarshal([]byte(s), &over); err != nil {
			return nil, fmt.Errorf("recipients in %s: %w", aOver, err)
		}
		return over, nil
	}
	l, ok := msg[aSpecs].(*types.AttributeValueMemberL)
	if !ok {
		return nil, nil
	}
	to := getStrList(msg, aTo)
	at, err := getTime(msg, aAt)
	if err != nil {
		return nil, err
	}
	out := make([]recipientSpec, len(l.Value))
	for i, v := range l.Value {
		m, ok := v.(*types.AttributeValueMemberM)
		if !ok {
			return nil, fmt.Errorf("recipient %d in %s is not a map", i, aSpecs)
		}
		addr := getStr(m.Value, specAddr)
		if _, ok := m.Value[specAddr]; !ok && i < len(to) {
			addr = to[i]
		}
		st, err := decodeStatus(addr, m.Value[specStatus])
		if err != nil {
			return nil, err
		}
		if st.UpdatedAt.IsZero() {
			st.UpdatedAt = at
		}
		r := recipientSpec{Address: addr, N: int64(i), Status: st, Indexed: true}
		switch m.Value[specInbox].(type) {
		case nil:
		case *types.AttributeValueMemberBOOL:
			r.Inbox = &at
		default:
			t, err := getTime(m.Value, specInbox)
			if err != nil {
				return nil, fmt.Errorf("recipient %s: %w", addr, err)
			}
			r.Inbox = &t
		}
		out[i] = r
	}
	return out, nil
}

// isVoid reports whether a message item is a void: the mark a retry
// leaves under the id of an acceptance it took over, so that the
// acceptance's own late write can never store the message.
func isVoid(msg item) bool {
	_, ok := msg[aVoided]
	return ok
}

// voids reports whether a void item stops the acceptance with this token.
func voids(msg item, tok string) bool {
	v, ok := msg[aVoided].(*types.AttributeValueMemberSS)
	return ok && slices.Contains(v.Value, tok)
}

// messageRef is what every recipient item repeats of its message, and
// what finds the items.
type messageRef struct {
	id      string
	at      time.Time // accepted_at
	rn      int64     // recipients with a status at accept
	expires int64     // TTL
	to      []string  // the message's recipients
	// shards is the number of TO# shards its recipient's item is keyed
	// with; 0 when its items are all under MSG#<id> (a message to several
	// recipients, or stored before recipient items were TO# entries).
	shards int
}

// recipientKey is the key of the item of the message's recipient addr.
// The recipient of a message to one recipient has its item in its TO#
// listing: the item is its own listing entry, which saves the gsi1 entry
// (a write unit) it needs under MSG#<id>. Other addresses (statuses added
// later for someone the message was not sent to), the recipients of
// messages to several (see Accept's plan) and every recipient of a message
// stored before have it under MSG#<id>.
func (m messageRef) recipientKey(addr string) item {
	if m.shards > 0 && containsFold(m.to, addr) {
		return key(sharded(toBase(addr), shardOf(m.id, m.shards)), timeSK(m.at, m.id))
	}
	return recipientKey(m.id, addr)
}

func (sh shards) recipientItem(m messageRef, r recipientSpec) item {
	it := m.recipientKey(r.Address)
	it[aAddr] = str(r.Address)
	it[aN] = num(r.N)
	it[aRN] = num(m.rn)
	it[aStatus] = statusAttr(r.Status)
	it[aTTL] = num(m.expires)
	if r.Indexed && m.shards == 0 {
		// Its message's recipients are listed by gsi1 entries.
		it[aG1P] = str(sh.to(r.Address, m.id))
		it[aG1S] = str(timeSK(m.at, m.id))
	}
	if r.Inbox != nil {
		it[aG2P] = str(sh.inboxOf(r.Address, m.id))
		it[aG2S] = str(timeSK(*r.Inbox, m.id))
	}
	return it
}

// ---- projections ----

// projection is a ProjectionExpression with every name aliased, so that
// no attribute name ever collides with a DynamoDB reserved word.
type projection struct {
	expr  string
	names map[string]string
}

func project(attrs ...string) *projection {
	p := &projection{names: make(map[string]string, len(attrs))}
	parts := make([]string, len(attrs))
	for i, a := range attrs {
		alias := "#p" + strconv.Itoa(i)
		p.names[alias] = a
		parts[i] = alias
	}
	p.expr = strings.Join(parts, ", ")
	return p
}

// alias is the placeholder of a projected attribute, for use in the same
// request's other expressions.
func (p *projection) alias(attr string) string {
	for a, name := range p.names {
		if name == attr {
			return a
		}
	}
	panic("dynamo: attribute " + attr + " is not in the projection")
}

// headAttrs is a message without its body, plus its recipient items: what
// listings and status reads need.
var headAttrs = project(aPK, aSK, aFrom, aTo, aSubj, aOrigin, aVerif, aAt, aRN, aSpecs, aOver, aTok, aVoided, aTTL, aAddr, aN, aStatus, aMsgTasks, aShards)

// itemSize is an item's size as DynamoDB meters it (attribute names plus
// values); accept uses it to decide whether a body still fits inline.
func itemSize(it item) int { return itemsize.Of(it) }
