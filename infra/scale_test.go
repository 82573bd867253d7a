package main

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/kit/cfntemplate"
)

// TestHotPartitionsAreVisible: the table and both indexes name their
// throttled keys (Contributor Insights, throttled keys only), an alarm
// fires on any throttle caused by one partition's limit, and the scale
// dashboard shows those throttles and the units consumed.
func TestHotPartitionsAreVisible(t *testing.T) {
	dev, prod := stacks(t)
	insights := map[string]any{"Enabled": true, "Mode": "THROTTLED_KEYS"}
	for _, st := range []*synthesized{dev, prod} {
		_, table := st.byRole(t, cfntemplate.RoleTable)
		if got := dig(table, "Properties", "ContributorInsightsSpecification"); !jsonEq(got, insights) {
			t.Errorf("%s table Contributor Insights: %v", st.settings.Stage, got)
		}
		gsis, _ := dig(table, "Properties", "GlobalSecondaryIndexes").([]any)
		if len(gsis) != 2 {
			t.Fatalf("%s: %d indexes", st.settings.Stage, len(gsis))
		}
		for _, g := range gsis {
			if got := dig(g, "ContributorInsightsSpecification"); !jsonEq(got, insights) {
				t.Errorf("%s index %v Contributor Insights: %v", st.settings.Stage, dig(g, "IndexName"), got)
			}
		}
	}

	topicID, _ := dev.byRole(t, cfntemplate.RoleAlarmTopic)
	must(t, "hot-partition alarm", func() {
		dev.tmpl.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), &map[string]any{
			"AlarmName":          dev.settings.Prefix + "-" + HotPartitionAlarm,
			"Threshold":          AlarmThrottles,
			"ComparisonOperator": "GreaterThanThreshold",
			"AlarmActions":       []any{map[string]any{"Ref": topicID}},
			"OKActions":          []any{map[string]any{"Ref": topicID}},
			"Metrics": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(&map[string]any{"Expression": assertions.Match_StringLikeRegexp(jsii.String(`FILL\(r0, 0\).*FILL\(w2, 0\)`))}),
				assertions.Match_ObjectLike(&map[string]any{"MetricStat": assertions.Match_ObjectLike(&map[string]any{
					"Metric": assertions.Match_ObjectLike(&map[string]any{"MetricName": "WriteKeyRangeThroughputThrottleEvents", "Namespace": "AWS/DynamoDB",
						"Dimensions": assertions.Match_ArrayWith(&[]any{map[string]any{"Name": "GlobalSecondaryIndexName", "Value": awsres.GSI2}})}),
				})}),
			}),
		})
	})

	var body string
	for _, d := range dev.resources("AWS::CloudWatch::Dashboard") {
		if text := strings.Join(literals(dig(d, "Properties", "DashboardBody")), ""); strings.Contains(text, "— scale") {
			body = text
		}
	}
	if body == "" {
		t.Fatal("no scale dashboard")
	}
	for _, want := range []string{
		"ReadKeyRangeThroughputThrottleEvents", "WriteKeyRangeThroughputThrottleEvents",
		"ConsumedWriteCapacityUnits", "ConsumedReadCapacityUnits", "ConcurrentExecutions", awsres.GSI1, awsres.GSI2,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scale dashboard lacks %s", want)
		}
	}
}

// TestDeliverConcurrencySizedForTheTarget: the deliver event source's
// maximum concurrency lets 10,000 deliveries a second through (batches
// of DeliverBatchSize in about 100 ms each, docs/scaling.md), and no
// more than the table's 40,000 read units a second take at about 3 per
// delivery (the heat scenario's figure).
func TestDeliverConcurrencySizedForTheTarget(t *testing.T) {
	const batchSeconds, target, readsPerDelivery, tableQuota = 0.1, 10000, 3, 40000
	perSecond := float64(DeliverMaxConcurrency*DeliverBatchSize) / batchSeconds
	if perSecond < target {
		t.Errorf("deliver drains %.0f records/s at most, below the %d msg/s target", perSecond, target)
	}
	if perSecond*readsPerDelivery > tableQuota {
		t.Errorf("a drain at %.0f records/s reads %.0f RRU/s, over the table's quota of %d", perSecond, perSecond*readsPerDelivery, tableQuota)
	}
}
