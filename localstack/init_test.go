// Package localstack_test keeps the LocalStack init hook
// (init/ready.d/10-agentry.sh), which must be a shell script, from drifting
// away from internal/adapter/awsres, the one definition of Agentry's resources.
package localstack_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/agentry/agentry/internal/adapter/awsres"
)

const hook = "init/ready.d/10-agentry.sh"

// assignment is the NAME=value form the hook promises to keep for these
// values: unindented, unquoted, no expansion.
var assignment = regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=([^$"'\s]*)$`)

func hookValues(t *testing.T) (map[string]string, string) {
	t.Helper()
	src, err := os.ReadFile(hook)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(src)))
	for sc.Scan() {
		if m := assignment.FindStringSubmatch(sc.Text()); m != nil {
			if _, dup := vals[m[1]]; dup {
				t.Errorf("%s assigns %s twice", hook, m[1])
			}
			vals[m[1]] = m[2]
		}
	}
	return vals, string(src)
}

// TestHookValuesMatchAwsres compares the hook's constants with awsres's.
func TestHookValuesMatchAwsres(t *testing.T) {
	vals, src := hookValues(t)
	n, err := awsres.NamesFor("p-q")
	if err != nil {
		t.Fatal(err)
	}
	suffix := func(name string) string { return strings.TrimPrefix(name, n.Prefix) }
	want := map[string]string{
		"TABLE_SUFFIX":          suffix(n.Table),
		"DELIVERY_QUEUE_SUFFIX": suffix(n.DeliveryQueue),
		"DEAD_LETTER_SUFFIX":    suffix(n.DeadLetter),
		"BUCKET_SUFFIX":         suffix(n.Bucket),
		"ATTR_PK":               awsres.AttrPK,
		"ATTR_SK":               awsres.AttrSK,
		"ATTR_TTL":              awsres.AttrTTL,
		"GSI1":                  awsres.GSI1,
		"ATTR_GSI1PK":           awsres.AttrGSI1PK,
		"ATTR_GSI1SK":           awsres.AttrGSI1SK,
		"GSI2":                  awsres.GSI2,
		"ATTR_GSI2PK":           awsres.AttrGSI2PK,
		"ATTR_GSI2SK":           awsres.AttrGSI2SK,
		"GSI_PROJECTION":        awsres.GSIProjection,
		"VISIBILITY_TIMEOUT":    strconv.Itoa(awsres.VisibilityTimeoutSeconds),
		"MESSAGE_RETENTION":     strconv.Itoa(awsres.MessageRetentionSeconds),
		"DLQ_RETENTION":         strconv.Itoa(awsres.DLQRetentionSeconds),
		"RECEIVE_WAIT":          strconv.Itoa(awsres.ReceiveWaitSeconds),
		"MAX_RECEIVE_COUNT":     strconv.Itoa(awsres.MaxReceiveCount),
	}
	for name, w := range want {
		got, ok := vals[name]
		if !ok {
			t.Errorf("%s: no plain assignment %s=%s", hook, name, w)
			continue
		}
		if got != w {
			t.Errorf("%s: %s=%s, internal/adapter/awsres says %s", hook, name, got, w)
		}
		// A value that is declared but never used would pass the check
		// above while the commands use something else.
		if !strings.Contains(src, "$"+name) && !strings.Contains(src, "${"+name) {
			t.Errorf("%s: %s is assigned but never used", hook, name)
		}
	}
}

// call is one recorded awslocal invocation.
type call []string

func (c call) is(service, op string) bool {
	return len(c) >= 2 && c[0] == service && c[1] == op
}

func (c call) flag(t *testing.T, name string) string {
	t.Helper()
	for i := 2; i+1 < len(c); i++ {
		if c[i] == name {
			return c[i+1]
		}
	}
	t.Fatalf("awslocal %s %s: no %s in %q", c[0], c[1], name, []string(c))
	return ""
}

func (c call) jsonFlag(t *testing.T, name string, into any) {
	t.Helper()
	if err := json.Unmarshal([]byte(c.flag(t, name)), into); err != nil {
		t.Fatalf("awslocal %s %s %s: %v", c[0], c[1], name, err)
	}
}

// fakeAWSLocal stands in for LocalStack's awslocal: it records its
// arguments (separated by \x1f, one call per line) and answers the few
// calls whose output the hook reads, as if nothing existed yet.
const fakeAWSLocal = `#!/bin/bash
for a in "$@"; do printf '%s\x1f' "$a"; done >>"$AWSLOCAL_LOG"
echo >>"$AWSLOCAL_LOG"
case "$1 $2" in
"dynamodb describe-table" | "s3api head-bucket") exit 254 ;;
"sqs create-queue") echo "http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/$4" ;;
"sqs get-queue-attributes") echo "arn:aws:sqs:us-east-1:000000000000:${4##*/}" ;;
esac
`

func runHook(t *testing.T, env ...string) []call {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("the hook is a bash script and bash is not on PATH: %v", err)
	}
	hookPath, err := filepath.Abs(hook)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "awslocal"), []byte(fakeAWSLocal), 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "calls")
	cmd := exec.Command(bash, hookPath)
	// Only what the hook may read, so the developer's own AGENTRY_* or
	// AWS_* variables cannot change the outcome.
	cmd.Env = append([]string{
		"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"AWSLOCAL_LOG=" + logPath,
		"AWS_DEFAULT_REGION=us-east-1",
	}, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", hook, err, out)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var calls []call
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		calls = append(calls, call(strings.Split(strings.TrimSuffix(line, "\x1f"), "\x1f")))
	}
	return calls
}

func find(t *testing.T, calls []call, service, op, name, value string) call {
	t.Helper()
	for _, c := range calls {
		if c.is(service, op) && (name == "" || c.flag(t, name) == value) {
			return c
		}
	}
	t.Fatalf("%s never calls awslocal %s %s %s %s", hook, service, op, name, value)
	return nil
}

// TestHookRequestsMatchAwsres runs the hook against a recording awslocal
// and compares each request with what awsres.Ensure sends, so that the
// commands (not only the constants) agree.
func TestHookRequestsMatchAwsres(t *testing.T) {
	for _, tc := range []struct {
		env    []string
		prefix string
	}{
		{nil, awsres.DefaultPrefix("localhost")},
		{[]string{"AGENTRY_DOMAIN=Mail.Example_Org.com"}, awsres.DefaultPrefix("Mail.Example_Org.com")},
		// Long enough that the 40-character cut lands next to a hyphen.
		{[]string{"AGENTRY_DOMAIN=abcdefghijklmnopqrstuvwxyz01234.example.com"}, awsres.DefaultPrefix("abcdefghijklmnopqrstuvwxyz01234.example.com")},
		{[]string{"AGENTRY_DOMAIN=ignored.example", "AGENTRY_RESOURCE_PREFIX=custom-prefix"}, "custom-prefix"},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			n, err := awsres.NamesFor(tc.prefix)
			if err != nil {
				t.Fatal(err)
			}
			calls := runHook(t, tc.env...)
			checkTable(t, calls, n)
			checkQueues(t, calls, n)
			find(t, calls, "s3api", "create-bucket", "--bucket", n.Bucket)
		})
	}
}

type keyElem struct{ AttributeName, KeyType string }

func sdkKeys(in []ddbtypes.KeySchemaElement) []keyElem {
	out := make([]keyElem, len(in))
	for i, k := range in {
		out[i] = keyElem{aws.ToString(k.AttributeName), string(k.KeyType)}
	}
	return out
}

func equalKeys(a, b []keyElem) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func checkTable(t *testing.T, calls []call, n awsres.Names) {
	t.Helper()
	want := awsres.CreateTableInput(n)
	c := find(t, calls, "dynamodb", "create-table", "--table-name", n.Table)
	if got := c.flag(t, "--billing-mode"); got != string(want.BillingMode) {
		t.Errorf("billing mode %s, want %s", got, want.BillingMode)
	}

	var attrs []struct{ AttributeName, AttributeType string }
	c.jsonFlag(t, "--attribute-definitions", &attrs)
	if len(attrs) != len(want.AttributeDefinitions) {
		t.Errorf("attribute definitions %v, want %d of them", attrs, len(want.AttributeDefinitions))
	}
	for i := range min(len(attrs), len(want.AttributeDefinitions)) {
		w := want.AttributeDefinitions[i]
		if attrs[i].AttributeName != aws.ToString(w.AttributeName) || attrs[i].AttributeType != string(w.AttributeType) {
			t.Errorf("attribute %d: %+v, want %s %s", i, attrs[i], aws.ToString(w.AttributeName), w.AttributeType)
		}
	}

	var keySchema []keyElem
	c.jsonFlag(t, "--key-schema", &keySchema)
	if got, w := keySchema, sdkKeys(want.KeySchema); !equalKeys(got, w) {
		t.Errorf("key schema %v, want %v", got, w)
	}

	var gsis []struct {
		IndexName  string
		KeySchema  []keyElem
		Projection struct{ ProjectionType string }
	}
	c.jsonFlag(t, "--global-secondary-indexes", &gsis)
	if len(gsis) != len(want.GlobalSecondaryIndexes) {
		t.Fatalf("GSIs %+v, want %d", gsis, len(want.GlobalSecondaryIndexes))
	}
	for i, w := range want.GlobalSecondaryIndexes {
		g := gsis[i]
		if g.IndexName != aws.ToString(w.IndexName) || !equalKeys(g.KeySchema, sdkKeys(w.KeySchema)) ||
			g.Projection.ProjectionType != string(w.Projection.ProjectionType) {
			t.Errorf("GSI %d: %+v, want %s %v %s", i, g, aws.ToString(w.IndexName), sdkKeys(w.KeySchema), w.Projection.ProjectionType)
		}
	}

	ttl := find(t, calls, "dynamodb", "update-time-to-live", "--table-name", n.Table)
	var spec struct {
		AttributeName string
		Enabled       bool
	}
	ttl.jsonFlag(t, "--time-to-live-specification", &spec)
	if spec.AttributeName != awsres.AttrTTL || !spec.Enabled {
		t.Errorf("TTL %+v, want %s enabled", spec, awsres.AttrTTL)
	}
}

func checkQueues(t *testing.T, calls []call, n awsres.Names) {
	t.Helper()
	var dlqAttrs map[string]string
	find(t, calls, "sqs", "create-queue", "--queue-name", n.DeadLetter).jsonFlag(t, "--attributes", &dlqAttrs)
	compareAttrs(t, n.DeadLetter, dlqAttrs, awsres.DeadLetterAttributes())

	// The ARN the fake answered for the DLQ is what the redrive policy
	// must name; awsres.QueueAttributes builds the policy from it.
	dlqARN := "arn:aws:sqs:us-east-1:000000000000:" + n.DeadLetter
	var attrs map[string]string
	find(t, calls, "sqs", "create-queue", "--queue-name", n.DeliveryQueue).jsonFlag(t, "--attributes", &attrs)
	compareAttrs(t, n.DeliveryQueue, attrs, awsres.QueueAttributes(dlqARN))
}

// compareAttrs compares queue attributes, the redrive policy (JSON in a
// string) by meaning rather than by spelling.
func compareAttrs(t *testing.T, queue string, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: attribute %s missing, want %s", queue, k, w)
			continue
		}
		if k == "RedrivePolicy" {
			var gv, wv map[string]any
			if json.Unmarshal([]byte(g), &gv) != nil || json.Unmarshal([]byte(w), &wv) != nil {
				t.Errorf("%s: RedrivePolicy %s, want %s", queue, g, w)
				continue
			}
			g, w = canon(gv), canon(wv)
		}
		if g != w {
			t.Errorf("%s: %s=%s, want %s", queue, k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: attribute %s=%s is not in internal/adapter/awsres", queue, k, got[k])
		}
	}
}

func canon(v map[string]any) string {
	b, _ := json.Marshal(v) // map keys are sorted
	return string(b)
}
