// Package awsres is the single definition of Agentry's AWS resources — the
// table, the queues, the bucket — by name and shape. The CDK stack builds
// them from these values, and `agentry serve` with AGENTRY_AWS_BOOTSTRAP=1
// and the tests create them from the same values in moto or LocalStack, so
// that code is always exercised against the real definitions.
package awsres

import (
	"fmt"
	"regexp"
	"strings"
)

// Names are the physical names of one deployment's resources.
type Names struct {
	Prefix        string // e.g. "agentry-example-com"
	Table         string // the single DynamoDB table
	DeliveryQueue string // SQS delivery queue
	DeadLetter    string // SQS dead-letter queue
	Bucket        string // S3 bucket for bodies too big for a queue message or an item
	StateMachine  string // Step Functions coordination state machine
}

var prefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$`)

// DefaultPrefix derives a resource prefix from a domain ("example.com" →
// "agentry-example-com"), the AGENTRY_RESOURCE_PREFIX default.
func DefaultPrefix(domain string) string {
	p := "agentry-" + strings.NewReplacer(".", "-", "_", "-").Replace(strings.ToLower(domain))
	if len(p) > 40 {
		p = strings.TrimRight(p[:40], "-")
	}
	return p
}

// NamesFor returns the resource names for a prefix.
func NamesFor(prefix string) (Names, error) {
	if !prefixRE.MatchString(prefix) {
		return Names{}, fmt.Errorf("resource prefix %q: use 3-40 lower-case letters, digits and hyphens", prefix)
	}
	return Names{
		Prefix:        prefix,
		Table:         prefix + "-main",
		DeliveryQueue: prefix + "-delivery",
		DeadLetter:    prefix + "-delivery-dlq",
		Bucket:        prefix + "-bodies",
		StateMachine:  prefix + "-coordination",
	}, nil
}

// Table shape. One table holds every item kind, keyed by pk/sk; two
// general-purpose GSIs serve the listing patterns (docs/dynamodb.md).
const (
	AttrPK     = "pk"
	AttrSK     = "sk"
	AttrTTL    = "expires_at" // epoch seconds; DynamoDB TTL deletes expired items
	GSI1       = "gsi1"
	AttrGSI1PK = "gsi1pk"
	AttrGSI1SK = "gsi1sk"
	GSI2       = "gsi2"
	AttrGSI2PK = "gsi2pk"
	AttrGSI2SK = "gsi2sk"
)

// GSIProjection is what each index projects: keys only keeps index writes
// at one unit; readers fetch the base item when they need more.
const GSIProjection = "KEYS_ONLY"

// Queue settings. The deliver function's timeout bounds the visibility
// timeout from below (6×, the AWS guidance for SQS event sources).
const (
	DeliverTimeoutSeconds    = 30
	VisibilityTimeoutSeconds = 6 * DeliverTimeoutSeconds
	MessageRetentionSeconds  = 14 * 24 * 3600 // the SQS maximum; the retry window is 7 days
	DLQRetentionSeconds      = 14 * 24 * 3600
	ReceiveWaitSeconds       = 20
	// MaxReceiveCount is how often SQS hands out a task before moving it
	// to the DLQ. Retries re-send the task (with its attempt count) rather
	// than relying on redelivery, so this only catches tasks that crash
	// their worker repeatedly (poison messages).
	MaxReceiveCount = 5
)

// MaxQueueBody is the SQS message size limit; larger task bodies go to S3.
const MaxQueueBody = 1 << 20

// MaxItemBytes is what we keep inline in a DynamoDB item (its limit is
// 400 KB including attribute names); larger message bodies go to S3.
const MaxItemBytes = 350 << 10

// BodyLifecycleDays is how long S3 keeps a claim-checked body.
const BodyLifecycleDays = 30
