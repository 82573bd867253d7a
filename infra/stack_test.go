package main

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/kit/cfntemplate"
)

func TestFunctions(t *testing.T) {
	dev, prod := stacks(t)
	for _, st := range []*synthesized{dev, prod} {
		for _, f := range functionSpecs {
			must(t, st.settings.Stage+" "+f.Name+" runtime, architecture, tracing", func() {
				st.tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), &map[string]any{
					"FunctionName":  st.settings.Prefix + "-" + f.Name,
					"Runtime":       "provided.al2023",
					"Handler":       "bootstrap",
					"Architectures": []any{"arm64"},
					"TracingConfig": map[string]any{"Mode": "Active"},
					"MemorySize":    f.MemoryMB,
					"Timeout":       f.TimeoutSecs,
				})
			})
			_, fn := st.byRole(t, f.Role)
			got := keys(dig(fn, "Properties", "Environment", "Variables").(map[string]any))
			want := EnvVars(f.Name)
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s environment: got %v, want %v", st.settings.Stage, f.Name, got, want)
			}
			if v := dig(fn, "Properties", "Environment", "Variables", "AGENTRY_DOMAIN"); v != st.settings.Domain {
				t.Errorf("%s %s AGENTRY_DOMAIN = %v", st.settings.Stage, f.Name, v)
			}
		}
	}
	// Only the API function can read the admin key.
	_, api := dev.byRole(t, cfntemplate.RoleAPIFunction)
	secretID, _ := dev.byRole(t, cfntemplate.RoleAdminKeySecret)
	if v := dig(api, "Properties", "Environment", "Variables", "AGENTRY_ADMIN_KEY_SECRET_ARN"); !jsonEq(v, map[string]any{"Ref": secretID}) {
		t.Errorf("api AGENTRY_ADMIN_KEY_SECRET_ARN = %v, want the secret's ARN", v)
	}
	// The public URL: the API endpoint in dev, the custom host in prod.
	if v := dig(api, "Properties", "Environment", "Variables", "AGENTRY_PUBLIC_URL"); !strings.Contains(mustJSON(v), "ApiEndpoint") {
		t.Errorf("dev AGENTRY_PUBLIC_URL = %v, want the HTTP API endpoint", v)
	}
	_, papi := prod.byRole(t, cfntemplate.RoleAPIFunction)
	if v := dig(papi, "Properties", "Environment", "Variables", "AGENTRY_PUBLIC_URL"); v != "https://amtp-peer.example.org" {
		t.Errorf("prod AGENTRY_PUBLIC_URL = %v, want the peers' mutual-TLS host", v)
	}
	// The access policy reaches the API as text, checked at synth.
	if v := dig(api, "Properties", "Environment", "Variables", "AGENTRY_POLICY"); v != "" {
		t.Errorf("dev AGENTRY_POLICY = %v, want empty (no policy)", v)
	}
	if v, _ := dig(papi, "Properties", "Environment", "Variables", "AGENTRY_POLICY").(string); !strings.Contains(v, "name: partners") {
		t.Errorf("prod AGENTRY_POLICY = %q, want testdata/policy.yaml", v)
	}
	if v := dig(papi, "Properties", "Environment", "Variables", "AGENTRY_MAX_MESSAGE_BYTES"); v != "5242880" {
		t.Errorf("AGENTRY_MAX_MESSAGE_BYTES = %v, want the 5 MiB Lambda-safe default", v)
	}
}

func TestQueuesRedriveAndVisibility(t *testing.T) {
	dev, _ := stacks(t)
	dlqID, dlq := dev.byRole(t, cfntemplate.RoleDeadLetterQueue)
	qID, q := dev.byRole(t, cfntemplate.RoleDeliveryQueue)
	_ = qID
	must(t, "redrive policy", func() {
		dev.tmpl.HasResourceProperties(jsii.String("AWS::SQS::Queue"), &map[string]any{
			"QueueName": dev.settings.Prefix + "-delivery",
			"RedrivePolicy": map[string]any{
				"deadLetterTargetArn": getAtt(dlqID, "Arn"),
				"maxReceiveCount":     awsres.MaxReceiveCount,
			},
		})
	})
	fnTimeout := func(role string) float64 {
		_, fn := dev.byRole(t, role)
		return num(dig(fn, "Properties", "Timeout"))
	}
	// The rule for SQS event sources: visibility ≥ 6 × function timeout,
	// so a batch that times out is not redelivered while still running.
	vis := num(dig(q, "Properties", "VisibilityTimeout"))
	if d := fnTimeout(cfntemplate.RoleDeliverFunction); vis < 6*d || d == 0 {
		t.Errorf("delivery queue visibility %vs < 6 × deliver timeout %vs", vis, d)
	}
	dvis := float64(DLQVisibilityTimeoutSeconds)
	if v, ok := dig(dlq, "Properties", "VisibilityTimeout").(float64); ok {
		dvis = v
	}
	if d := fnTimeout(cfntemplate.RoleDeadletterFn); dvis < 6*d || d == 0 {
		t.Errorf("DLQ visibility %vs < 6 × deadletter timeout %vs", dvis, d)
	}
	if got := num(dig(dlq, "Properties", "MessageRetentionPeriod")); got != awsres.DLQRetentionSeconds {
		t.Errorf("DLQ retention %v", got)
	}
}

func TestEventSources(t *testing.T) {
	dev, _ := stacks(t)
	for _, c := range []struct {
		fnRole, queueRole string
		batch, conc       int
	}{
		{cfntemplate.RoleDeliverFunction, cfntemplate.RoleDeliveryQueue, DeliverBatchSize, DeliverMaxConcurrency},
		{cfntemplate.RoleDeadletterFn, cfntemplate.RoleDeadLetterQueue, DeadletterBatchSize, DeadletterMaxConcurrency},
	} {
		fnID, _ := dev.byRole(t, c.fnRole)
		qID, _ := dev.byRole(t, c.queueRole)
		must(t, c.fnRole+" event source", func() {
			dev.tmpl.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), &map[string]any{
				"FunctionName":          map[string]any{"Ref": fnID},
				"EventSourceArn":        getAtt(qID, "Arn"),
				"BatchSize":             c.batch,
				"ScalingConfig":         map[string]any{"MaximumConcurrency": c.conc},
				"FunctionResponseTypes": []any{"ReportBatchItemFailures"},
			})
		})
	}
	must(t, "two event source mappings", func() {
		dev.tmpl.ResourceCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), jsii.Number(2))
	})
	// The API: one $default route to the api function, payload v2.
	apiID, _ := dev.byRole(t, cfntemplate.RoleAPIFunction)
	must(t, "HTTP API integration", func() {
		dev.tmpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Integration"), &map[string]any{
			"IntegrationType":      "AWS_PROXY",
			"PayloadFormatVersion": "2.0",
			"IntegrationUri":       getAtt(apiID, "Arn"),
		})
		dev.tmpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Route"), &map[string]any{"RouteKey": "$default"})
		dev.tmpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), &map[string]any{
			"StageName":         "$default",
			"AutoDeploy":        true,
			"AccessLogSettings": assertions.Match_ObjectLike(&map[string]any{"DestinationArn": assertions.Match_AnyValue()}),
		})
	})
}

func TestDataStores(t *testing.T) {
	dev, prod := stacks(t)
	for _, st := range []*synthesized{dev, prod} {
		must(t, st.settings.Stage+" table", func() {
			st.tmpl.HasResourceProperties(jsii.String("AWS::DynamoDB::Table"), &map[string]any{
				"TableName":                        st.settings.Prefix + "-main",
				"BillingMode":                      "PAY_PER_REQUEST",
				"TimeToLiveSpecification":          map[string]any{"AttributeName": awsres.AttrTTL, "Enabled": true},
				"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
			})
		})
		must(t, st.settings.Stage+" bucket", func() {
			st.tmpl.HasResourceProperties(jsii.String("AWS::S3::Bucket"), &map[string]any{
				"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{
					map[string]any{"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "AES256"}},
				}},
				"PublicAccessBlockConfiguration": map[string]any{
					"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
				},
				"LifecycleConfiguration": map[string]any{"Rules": assertions.Match_ArrayWith(&[]any{
					assertions.Match_ObjectLike(&map[string]any{"ExpirationInDays": awsres.BodyLifecycleDays, "Status": "Enabled"}),
				})},
			})
		})
	}
	// Production keeps its data; dev cleans up.
	for _, role := range []string{cfntemplate.RoleTable, cfntemplate.RoleBodiesBucket, cfntemplate.RoleAdminKeySecret} {
		_, p := prod.byRole(t, role)
		if p["DeletionPolicy"] != "Retain" || p["UpdateReplacePolicy"] != "Retain" {
			t.Errorf("prod %s: DeletionPolicy %v UpdateReplacePolicy %v, want Retain", role, p["DeletionPolicy"], p["UpdateReplacePolicy"])
		}
		_, d := dev.byRole(t, role)
		if d["DeletionPolicy"] != "Delete" {
			t.Errorf("dev %s: DeletionPolicy %v, want Delete", role, d["DeletionPolicy"])
		}
	}
	_, pt := prod.byRole(t, cfntemplate.RoleTable)
	if dig(pt, "Properties", "DeletionProtectionEnabled") != true {
		t.Error("prod table: deletion protection is off")
	}
	_, dt := dev.byRole(t, cfntemplate.RoleTable)
	if v := dig(dt, "Properties", "DeletionProtectionEnabled"); v == true {
		t.Error("dev table: deletion protection on (make destroy would fail)")
	}
	must(t, "prod has no auto-delete of bodies", func() {
		prod.tmpl.ResourceCountIs(jsii.String("Custom::S3AutoDeleteObjects"), jsii.Number(0))
	})
}

// TestIAMLeastPrivilege: no Allow statement pairs a wildcard action with
// a wildcard resource; Resource "*" only where the service has no
// resource-level permissions (X-Ray); each function gets only its grants.
func TestIAMLeastPrivilege(t *testing.T) {
	dev, prod := stacks(t)
	// X-Ray's actions support no resource-level permissions; the state
	// machine's tracing also reads sampling rules.
	resourceStar := map[string]bool{"xray:PutTraceSegments": true, "xray:PutTelemetryRecords": true,
		"xray:GetSamplingRules": true, "xray:GetSamplingTargets": true}
	for _, st := range []*synthesized{dev, prod} {
		var docs []any
		for _, p := range st.resources("AWS::IAM::Policy") {
			docs = append(docs, dig(p, "Properties", "PolicyDocument"))
		}
		for _, r := range st.resources("AWS::IAM::Role") {
			if ps, ok := dig(r, "Properties", "Policies").([]any); ok {
				for _, p := range ps {
					docs = append(docs, dig(p, "PolicyDocument"))
				}
			}
		}
		if len(docs) == 0 {
			t.Fatalf("%s: no IAM policies found", st.settings.Stage)
		}
		for _, d := range docs {
			for _, s := range dig(d, "Statement").([]any) {
				if dig(s, "Effect") != "Allow" {
					continue
				}
				actions, res := literals(dig(s, "Action")), literals(dig(s, "Resource"))
				if containsAny(actions, "*") && containsAny(res, "*") {
					t.Errorf("%s: wildcard action with wildcard resource: %s", st.settings.Stage, mustJSON(s))
				}
				for _, a := range actions {
					if a == "*" || strings.HasSuffix(a, ":*") {
						t.Errorf("%s: all-actions grant %q: %s", st.settings.Stage, a, mustJSON(s))
					}
				}
				if dig(s, "Resource") == "*" {
					for _, a := range actions {
						if !resourceStar[a] {
							t.Errorf("%s: %s on Resource *: %s", st.settings.Stage, a, mustJSON(s))
						}
					}
				}
			}
		}
	}

	// Who may do what (dev): the statements attached to each function's role.
	statementsOf := func(role string) []any {
		_, fn := dev.byRole(t, role)
		roleID := dig(fn, "Properties", "Role", "Fn::GetAtt", 0)
		var out []any
		for _, p := range dev.resources("AWS::IAM::Policy") {
			for _, r := range dig(p, "Properties", "Roles").([]any) {
				if jsonEq(r, map[string]any{"Ref": roleID}) {
					out = append(out, dig(p, "Properties", "PolicyDocument", "Statement").([]any)...)
				}
			}
		}
		return out
	}
	dlqID, _ := dev.byRole(t, cfntemplate.RoleDeadLetterQueue)
	qID, _ := dev.byRole(t, cfntemplate.RoleDeliveryQueue)
	secretID, _ := dev.byRole(t, cfntemplate.RoleAdminKeySecret)
	signID, _ := dev.byRole(t, cfntemplate.RoleSigningKeySecret)
	machineID, _ := dev.byRole(t, cfntemplate.RoleCoordination)
	for _, c := range []struct {
		name, role   string
		want, absent []string
		receiveFrom  string // the only queue it may receive from ("" = none)
	}{
		// api runs the Immediate Path's attempt, whose permanent failure
		// is dead-lettered like the worker's.
		{"api", cfntemplate.RoleAPIFunction, []string{"secretsmanager:GetSecretValue", secretID, "sqs:SendMessage", "s3:PutObject", "dynamodb:PutItem", "states:StartExecution", "states:SendTaskSuccess", machineID, dlqID}, []string{signID, "ses:"}, ""},
		{"deliver", cfntemplate.RoleDeliverFunction, []string{"sqs:ChangeMessageVisibility", qID, dlqID, "s3:GetObject", "secretsmanager:GetSecretValue", signID, "states:StartExecution", "states:SendTaskSuccess", machineID}, []string{secretID}, qID},
		{"deadletter", cfntemplate.RoleDeadletterFn, []string{dlqID, "dynamodb:UpdateItem", "sqs:SendMessage", "states:SendTaskSuccess", machineID}, []string{"secretsmanager:", secretID, signID, "ses:"}, dlqID},
		{"deliver sends email", cfntemplate.RoleDeliverFunction, []string{"ses:SendRawEmail", "ses:SendEmail", ":identity/", ":configuration-set/" + dev.settings.Prefix + "-email"}, nil, qID},
		{"inbound-email", RoleInboundEmailFn, []string{"s3:GetObject", InboundEmailPrefix + "*", "dynamodb:PutItem", "sqs:SendMessage", "states:SendTaskSuccess", machineID}, []string{"secretsmanager:", secretID, signID, "ses:", dlqID}, ""},
		{"email-events", RoleEmailEventsFn, []string{"dynamodb:UpdateItem", "sqs:SendMessage", machineID}, []string{"secretsmanager:", secretID, signID, "ses:", dlqID}, ""},
	} {
		stmts := statementsOf(c.role)
		doc := mustJSON(stmts)
		if len(stmts) == 0 {
			t.Errorf("%s: no policy attached to its role", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(doc, w) {
				t.Errorf("%s policy lacks %s", c.name, w)
			}
		}
		for _, a := range c.absent {
			if strings.Contains(doc, a) {
				t.Errorf("%s policy has %s, which it does not need", c.name, a)
			}
		}
		var receives []string
		for _, s := range stmts {
			if containsAny(literals(dig(s, "Action")), "sqs:ReceiveMessage") {
				receives = append(receives, mustJSON(dig(s, "Resource")))
			}
		}
		switch {
		case c.receiveFrom == "" && len(receives) > 0:
			t.Errorf("%s may receive from %v", c.name, receives)
		case c.receiveFrom != "" && (len(receives) != 1 || receives[0] != mustJSON(getAtt(c.receiveFrom, "Arn"))):
			t.Errorf("%s receives from %v, want only %s", c.name, receives, c.receiveFrom)
		}
	}
}

func TestAlarms(t *testing.T) {
	dev, prod := stacks(t)
	topicID, _ := dev.byRole(t, cfntemplate.RoleAlarmTopic)
	p := dev.settings.Prefix
	for name, want := range map[string]map[string]any{
		"dlq-not-empty": {
			"MetricName": "ApproximateNumberOfMessagesVisible", "Namespace": "AWS/SQS",
			"Threshold": AlarmDLQThreshold, "ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1,
		},
		"oldest-message-age": {
			"MetricName": "ApproximateAgeOfOldestMessage", "Namespace": "AWS/SQS",
			"Threshold": AlarmOldestMessageSeconds, "ComparisonOperator": "GreaterThanThreshold",
		},
		"api-5xx-rate": {
			"Threshold": Alarm5xxPercent, "ComparisonOperator": "GreaterThanThreshold",
			"Metrics": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
				"Expression": "IF(requests > 0, 100 * errors / requests, 0)",
			})}),
		},
		"api-throttles":           {"MetricName": "Throttles", "Namespace": "AWS/Lambda", "Threshold": AlarmThrottles},
		"deliver-throttles":       {"MetricName": "Throttles", "Namespace": "AWS/Lambda", "Threshold": AlarmThrottles},
		"deadletter-throttles":    {"MetricName": "Throttles", "Namespace": "AWS/Lambda", "Threshold": AlarmThrottles},
		"inbound-email-throttles": {"MetricName": "Throttles", "Namespace": "AWS/Lambda", "Threshold": AlarmThrottles},
		"email-events-throttles":  {"MetricName": "Throttles", "Namespace": "AWS/Lambda", "Threshold": AlarmThrottles},
		"dynamodb-throttles": {
			"Threshold": AlarmThrottles,
			"Metrics": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
				"Expression": assertions.Match_StringLikeRegexp(jsii.String("tr.*tw")),
			})}),
		},
	} {
		want["AlarmName"] = p + "-" + name
		want["AlarmActions"] = []any{map[string]any{"Ref": topicID}}
		must(t, "alarm "+name, func() {
			dev.tmpl.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), &want)
		})
	}
	// + the hot-partition alarm (scale_test.go).
	must(t, "alarm count", func() { dev.tmpl.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(10)) })
	must(t, "prod alarm e-mail", func() {
		prod.tmpl.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), &map[string]any{"Protocol": "email", "Endpoint": "ops@example.org"})
	})
	// The only subscription of dev is the email-events function's, to
	// SES's bounces and complaints: no alarm e-mail.
	for _, sub := range dev.resources("AWS::SNS::Subscription") {
		if p := dig(sub, "Properties", "Protocol"); p != "lambda" {
			t.Errorf("dev has a %v subscription", p)
		}
	}
}

func TestDashboard(t *testing.T) {
	dev, _ := stacks(t)
	ds := dev.resources("AWS::CloudWatch::Dashboard")
	// The main one and the scale one (scale_test.go).
	if len(ds) != 2 {
		t.Fatalf("dashboards: %d", len(ds))
	}
	var body string
	for _, d := range ds {
		if dig(d, "Properties", "DashboardName") == dev.settings.Prefix {
			body = strings.Join(literals(dig(d, "Properties", "DashboardBody")), "")
		}
	}
	for _, want := range append([]string{
		`"Agentry"`, DimDeployment, `"p50"`, `"p95"`, `"p99"`, `"4xx"`, `"5xx"`,
		"ApproximateAgeOfOldestMessage", "ApproximateNumberOfMessagesVisible", "ReadThrottleEvents", "WriteThrottleEvents",
		`"Errors"`, `"Throttles"`, `"Duration"`, `"alarms"`,
	}, AllMetrics...) {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %s", want)
		}
	}
}

func TestOutputs(t *testing.T) {
	dev, prod := stacks(t)
	for _, st := range []*synthesized{dev, prod} {
		for _, o := range []string{"ApiUrl", "ApiEndpoint", "AmtpTxtRecord", "DashboardUrl", "AlarmTopicArn", "AdminKeySecretArn", "SigningKeySecretArn",
			"TableName", "DeliveryQueueUrl", "DeadLetterQueueUrl", "BodiesBucketName"} {
			must(t, st.settings.Stage+" output "+o, func() {
				st.tmpl.HasOutput(jsii.String(o), &map[string]any{"Value": assertions.Match_AnyValue()})
			})
		}
	}
	txt := mustJSON(dig(dev.json, "Outputs", "AmtpTxtRecord", "Value"))
	for _, want := range []string{`_amtp.example.com. 300 IN TXT`, "v=amtp1;gateway=", "ApiEndpoint", ";auth=apikey;max-size=5242880"} {
		if !strings.Contains(txt, want) {
			t.Errorf("dev TXT output %s lacks %q", txt, want)
		}
	}
	// prod has OAuth and peer mTLS: the record advertises both and sends
	// other gateways to the mutual-TLS host.
	const prodTXT = `v=amtp1;gateway=https://amtp-peer.example.org;auth=apikey,oauth2,mtls;max-size=5242880`
	if v := dig(prod.json, "Outputs", "AmtpTxtRecord", "Value"); v != `_amtp.example.org. 300 IN TXT "`+prodTXT+`"` {
		t.Errorf("prod TXT output = %v", v)
	}
	if !strings.Contains(mustJSON(dig(dev.json, "Outputs", "DashboardUrl", "Value")), "#dashboards/dashboard/") {
		t.Error("dashboard URL output")
	}
	// With a hosted zone the stack publishes the record and the alias.
	must(t, "prod TXT record", func() {
		prod.tmpl.HasResourceProperties(jsii.String("AWS::Route53::RecordSet"), &map[string]any{
			"Type": "TXT", "Name": "_amtp.example.org.", "HostedZoneId": "Z0123456789EXAMPLE",
			"ResourceRecords": []any{`"` + prodTXT + `"`},
		})
		prod.tmpl.HasResourceProperties(jsii.String("AWS::Route53::RecordSet"), &map[string]any{
			"Type": "A", "Name": "amtp.example.org.", "AliasTarget": assertions.Match_AnyValue(),
		})
		prod.tmpl.HasResourceProperties(jsii.String("AWS::CertificateManager::Certificate"), &map[string]any{
			"DomainName": "amtp.example.org", "ValidationMethod": "DNS",
		})
		prod.tmpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::ApiMapping"), &map[string]any{"Stage": "$default"})
	})
	must(t, "dev has no DNS", func() { dev.tmpl.ResourceCountIs(jsii.String("AWS::Route53::RecordSet"), jsii.Number(0)) })
}

// TestOAuthAndPeerMTLS: with OAuth settings an HTTP API JWT authorizer
// guards /oauth/{proxy+} (and only it: $default stays open to agent keys
// and other gateways); with a truststore, peers get a mutual-TLS custom
// domain of their own; the api function is told both.
func TestOAuthAndPeerMTLS(t *testing.T) {
	dev, prod := stacks(t)
	must(t, "JWT authorizer", func() {
		prod.tmpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Authorizer"), &map[string]any{
			"AuthorizerType": "JWT", "IdentitySource": []any{"$request.header.Authorization"},
			"JwtConfiguration": map[string]any{"Issuer": "https://login.example.org/", "Audience": []any{"https://amtp.example.org"}},
		})
		prod.tmpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Route"), &map[string]any{
			"RouteKey": "ANY /oauth/{proxy+}", "AuthorizationType": "JWT", "AuthorizerId": assertions.Match_AnyValue(),
		})
		prod.tmpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Route"), &map[string]any{
			"RouteKey": "$default", "AuthorizationType": "NONE",
		})
		dev.tmpl.ResourceCountIs(jsii.String("AWS::ApiGatewayV2::Authorizer"), jsii.Number(0))
	})
	must(t, "mutual TLS domain", func() {
		prod.tmpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::DomainName"), &map[string]any{
			"DomainName":              "amtp-peer.example.org",
			"MutualTlsAuthentication": map[string]any{"TruststoreUri": "s3://example-org-pki/amtp/truststore.pem"},
		})
		prod.tmpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::DomainName"), &map[string]any{
			"DomainName": "amtp.example.org", "MutualTlsAuthentication": assertions.Match_Absent(),
		})
		prod.tmpl.HasResourceProperties(jsii.String("AWS::Route53::RecordSet"), &map[string]any{
			"Type": "A", "Name": "amtp-peer.example.org.", "AliasTarget": assertions.Match_AnyValue(),
		})
		prod.tmpl.HasResourceProperties(jsii.String("AWS::CertificateManager::Certificate"), &map[string]any{
			"DomainName": "amtp-peer.example.org", "ValidationMethod": "DNS",
		})
	})
	_, papi := prod.byRole(t, cfntemplate.RoleAPIFunction)
	_, dapi := dev.byRole(t, cfntemplate.RoleAPIFunction)
	for name, want := range map[string][2]string{
		"AGENTRY_OAUTH_ISSUER":      {"", "https://login.example.org/"},
		"AGENTRY_OAUTH_AUDIENCE":    {"", "https://amtp.example.org"},
		"AGENTRY_REQUIRE_PEER_MTLS": {"0", "1"},
		"AGENTRY_PUBLIC_URL":        {"", "https://amtp-peer.example.org"},
	} {
		if v := dig(papi, "Properties", "Environment", "Variables", name); v != want[1] {
			t.Errorf("prod api %s = %v, want %q", name, v, want[1])
		}
		if v := dig(dapi, "Properties", "Environment", "Variables", name); want[0] != "" && v != want[0] {
			t.Errorf("dev api %s = %v, want %q", name, v, want[0])
		}
	}

	for _, bad := range []Settings{
		{Stage: "dev", OAuthIssuer: "https://login.example.org/"},
		{Stage: "dev", OAuthIssuer: "http://login.example.org/", OAuthAudience: "x"},
		{Stage: "dev", MTLSTruststore: "s3://bucket-only"},
		{Stage: "dev", MTLSTruststore: "s3://b/k"}, // no zone, no peer certificate
		{Stage: "dev", PeerHost: "peer.example.com"},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("settings %+v accepted", bad)
		}
	}
}

// TestSameDefinitionsAsAwsres: the table and queues the stack declares
// are exactly those awsres defines for `agentry serve` bootstrap — both
// seen through cfntemplate, which is also what creates them in moto.
func TestSameDefinitionsAsAwsres(t *testing.T) {
	dev, _ := stacks(t)
	tmpl, err := cfntemplate.FromValue(dev.json)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := cfntemplate.NewPlan(tmpl, cfntemplate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	names, _ := awsres.NamesFor(dev.settings.Prefix)
	want := awsres.CreateTableInput(names)
	tbl, ok := plan.Step(cfntemplate.RoleTable)
	if !ok {
		t.Fatal("no table in the plan")
	}
	got := tbl.Table.Input
	if *got.TableName != *want.TableName || got.BillingMode != want.BillingMode {
		t.Errorf("table name/billing: %s %s, want %s %s", *got.TableName, got.BillingMode, *want.TableName, want.BillingMode)
	}
	for what, pair := range map[string][2]any{
		"key schema":            {got.KeySchema, want.KeySchema},
		"attribute definitions": {sortedJSON(got.AttributeDefinitions), sortedJSON(want.AttributeDefinitions)},
		"GSIs":                  {sortedJSON(got.GlobalSecondaryIndexes), sortedJSON(want.GlobalSecondaryIndexes)},
	} {
		if mustJSON(pair[0]) != mustJSON(pair[1]) {
			t.Errorf("table %s differ:\n stack:  %s\n awsres: %s", what, mustJSON(pair[0]), mustJSON(pair[1]))
		}
	}
	if tbl.Table.TTL == nil || *tbl.Table.TTL.AttributeName != awsres.AttrTTL {
		t.Errorf("TTL: %+v", tbl.Table.TTL)
	}

	dlq, _ := plan.Step(cfntemplate.RoleDeadLetterQueue)
	q, _ := plan.Step(cfntemplate.RoleDeliveryQueue)
	if dlq.Name != names.DeadLetter || q.Name != names.DeliveryQueue {
		t.Errorf("queue names %s, %s", q.Name, dlq.Name)
	}
	if !reflect.DeepEqual(dlq.Queue, awsres.DeadLetterAttributes()) {
		t.Errorf("DLQ attributes:\n stack:  %v\n awsres: %v", dlq.Queue, awsres.DeadLetterAttributes())
	}
	dlqARN := "arn:aws:sqs:us-east-1:" + cfntemplate.DefaultAccount + ":" + names.DeadLetter
	wantQ := awsres.QueueAttributes(dlqARN)
	if len(q.Queue) != len(wantQ) {
		t.Errorf("delivery queue attributes:\n stack:  %v\n awsres: %v", q.Queue, wantQ)
	}
	for k, w := range wantQ {
		g := q.Queue[k]
		if k == "RedrivePolicy" {
			var a, b any
			_ = json.Unmarshal([]byte(g), &a)
			_ = json.Unmarshal([]byte(w), &b)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("RedrivePolicy %s, want %s", g, w)
			}
			continue
		}
		if g != w {
			t.Errorf("delivery queue %s = %q, awsres %q", k, g, w)
		}
	}
}

func sortedJSON[T any](list []T) []string {
	var out []string
	for _, e := range list {
		out = append(out, mustJSON(e))
	}
	sort.Strings(out)
	return out
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestSettings(t *testing.T) {
	dev, prod := stacks(t)
	if tp := prod.stack.TerminationProtection(); tp == nil || !*tp {
		t.Error("prod stack without termination protection")
	}
	if tp := dev.stack.TerminationProtection(); tp != nil && *tp {
		t.Error("dev stack with termination protection (make destroy would fail)")
	}
	if md := dev.json["Metadata"].(map[string]any); md[cfntemplate.MetaPrefix] != "agentry-dev" || md[cfntemplate.MetaStage] != "dev" {
		t.Errorf("template metadata %v", md)
	}

	// Context (-c key=value) is where `make deploy` puts the settings.
	app := awscdk.NewApp(&awscdk.AppProps{Context: &map[string]any{
		"stage": "prod", "domain": "Example.ORG", "hostedZoneId": "Z1", "hostedZoneName": "example.org.",
		"alarmEmail": "ops@example.org", "logLevel": "debug", "maxMessageBytes": "1048576", "lambdaDir": "/opt/fns",
	}})
	s, err := SettingsFromContext(app.Node(), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{Stage: "prod", Prefix: "agentry-prod", Domain: "example.org", LambdaDir: "/opt/fns",
		HostedZoneID: "Z1", HostedZoneName: "example.org", APIHost: "amtp.example.org", AlarmEmail: "ops@example.org",
		LogLevel: "debug", MaxMessageBytes: 1 << 20}
	if s != want {
		t.Errorf("settings from context:\n got  %+v\n want %+v", s, want)
	}
	s, err = SettingsFromContext(awscdk.NewApp(nil).Node(), func(k string) string {
		return map[string]string{"AGENTRY_LAMBDA_DIR": "/srv/lambda"}[k]
	})
	if err != nil || s.LambdaDir != "/srv/lambda" || s.Stage != "dev" {
		t.Errorf("AGENTRY_LAMBDA_DIR: %+v %v", s, err)
	}

	if _, err := (Settings{Stage: "prod"}).withDefaults(); err == nil || !strings.Contains(err.Error(), "domain") {
		t.Errorf("prod without a domain: %v", err)
	}
	if _, err := (Settings{Stage: "dev", Domain: "example.com", HostedZoneID: "Z1", HostedZoneName: "example.net"}).withDefaults(); err == nil {
		t.Error("domain outside the hosted zone accepted")
	}
	if _, err := (Settings{Stage: "dev", APIHost: "amtp.example.com"}).withDefaults(); err == nil {
		t.Error("apiHost without zone or certificate accepted")
	}
	if _, err := (Settings{Stage: "Prod!"}).withDefaults(); err == nil {
		t.Error("bad stage accepted")
	}
	if _, err := (Settings{Stage: "dev", MaxMessageBytes: 8 << 20}).withDefaults(); err == nil {
		t.Error("a max message size over the Lambda payload limit accepted")
	}
	s, err = (Settings{Stage: "dev", Domain: "Example.COM", HostedZoneID: "Z1", HostedZoneName: "example.com"}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if s.Prefix != "agentry-dev" || s.Domain != "example.com" || s.APIHost != "amtp.example.com" || s.MaxMessageBytes != DefaultMaxMessageBytes {
		t.Errorf("defaults: %+v", s)
	}
	if _, err := (Settings{Stage: "dev", PolicyFile: filepath.Join("testdata", "bad-policy.yaml")}).withDefaults(); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("a policy that does not parse must fail the synth with its line: %v", err)
	}
	if _, err := (Settings{Stage: "dev", PolicyFile: filepath.Join("testdata", "agentry-dev.template.json")}).withDefaults(); err == nil || !strings.Contains(err.Error(), "must fit") {
		t.Errorf("a policy too large for the environment must fail the synth: %v", err)
	}
	if err := (Settings{LambdaDir: t.TempDir()}).checkLambdaDir(); err == nil || !strings.Contains(err.Error(), "make lambdas") {
		t.Errorf("missing bootstrap files: %v", err)
	}
}
