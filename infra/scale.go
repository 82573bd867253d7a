package main

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"

	"github.com/agentry/agentry/internal/adapter/awsres"
)

// What keeps a hot partition visible and the functions from causing one
// (docs/scaling.md). The table's listings are sharded (the dynamo
// adapter's shards.go), so no partition key should ever reach DynamoDB's
// per-partition limits; when one does anyway — a new access pattern, a
// shard count set too low — its throttles are counted apart from the
// table's (the KeyRange metrics), Contributor Insights names the key, and
// the hot-partition alarm fires.

// HotPartitionAlarm is the alarm on throttles caused by one partition
// reaching its limit (1,000 write or 3,000 read units a second), on the
// table or either index; any such throttle fires it.
const HotPartitionAlarm = "dynamodb-hot-partition"

// hotKeyInsights turns on CloudWatch Contributor Insights for throttled
// keys only: the rules (DynamoDBContributorInsights-PKT-<table>…) list
// the partition keys DynamoDB throttled, and cost nothing while none is.
// Accessed-keys mode would bill every request as a log event.
func hotKeyInsights() *awsdynamodb.ContributorInsightsSpecification {
	return &awsdynamodb.ContributorInsightsSpecification{
		Enabled: jsii.Bool(true),
		Mode:    awsdynamodb.ContributorInsightsMode_THROTTLED_KEYS,
	}
}

// keyRangeThrottles are the table's and each index's throttles caused by
// a partition's limit, as metric-math inputs.
func keyRangeThrottles(r *resources, period awscdk.Duration) map[string]awscloudwatch.IMetric {
	m := map[string]awscloudwatch.IMetric{}
	metric := func(name, index string) awscloudwatch.IMetric {
		dims := map[string]*string{"TableName": r.table.TableName()}
		if index != "" {
			dims["GlobalSecondaryIndexName"] = jsii.String(index)
		}
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String("AWS/DynamoDB"), MetricName: jsii.String(name), DimensionsMap: &dims,
			Statistic: jsii.String("Sum"), Period: period,
		})
	}
	for i, index := range []string{"", awsres.GSI1, awsres.GSI2} {
		m[fmt.Sprintf("r%d", i)] = metric("ReadKeyRangeThroughputThrottleEvents", index)
		m[fmt.Sprintf("w%d", i)] = metric("WriteKeyRangeThroughputThrottleEvents", index)
	}
	return m
}

// newScale adds the hot-partition alarm (notifying the stack's alarm
// topic) and a dashboard of what bounds the deployment's throughput.
func newScale(stack awscdk.Stack, r *resources) {
	five := awscdk.Duration_Minutes(jsii.Number(5))
	one := awscdk.Duration_Minutes(jsii.Number(1))
	sum := func(m map[string]awscloudwatch.IMetric, label string, period awscdk.Duration) awscloudwatch.IMetric {
		expr := ""
		for _, id := range []string{"r0", "w0", "r1", "w1", "r2", "w2"} {
			if expr != "" {
				expr += " + "
			}
			expr += "FILL(" + id + ", 0)"
		}
		return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String(expr), UsingMetrics: &m, Period: period, Label: jsii.String(label),
		})
	}
	alarm := awscloudwatch.NewAlarm(stack, jsii.String(HotPartitionAlarm), &awscloudwatch.AlarmProps{
		AlarmName: jsii.String(r.names.Prefix + "-" + HotPartitionAlarm),
		AlarmDescription: jsii.String("A DynamoDB partition key reached its limit (1,000 WCU/s or 3,000 RCU/s) on the table or an index: " +
			"Contributor Insights (rules DynamoDBContributorInsights-PKT-" + r.names.Table + "…) names the key; docs/scaling.md says what to raise"),
		Metric:             sum(keyRangeThrottles(r, five), "partition throttles", five),
		Threshold:          jsii.Number(AlarmThrottles),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		DatapointsToAlarm:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	if topic, ok := stack.Node().TryFindChild(jsii.String("AlarmTopic")).(awssns.ITopic); ok {
		action := awscloudwatchactions.NewSnsAction(topic)
		alarm.AddAlarmAction(action)
		alarm.AddOkAction(action)
	}

	graph := func(title string, left ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Width: jsii.Number(12), Height: jsii.Number(6), Left: &left,
		})
	}
	consumed := func(name, index, label string) awscloudwatch.IMetric {
		dims := map[string]*string{"TableName": r.table.TableName()}
		if index != "" {
			dims["GlobalSecondaryIndexName"] = jsii.String(index)
		}
		// Per second: the quotas and the per-partition limits are rates.
		// Ids are unique within a graph.
		id := strings.ToLower(strings.TrimSuffix(name, "CapacityUnits")) + strings.ReplaceAll(label, "-", "")
		return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String(id + " / PERIOD(" + id + ")"),
			UsingMetrics: &map[string]awscloudwatch.IMetric{id: awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
				Namespace: jsii.String("AWS/DynamoDB"), MetricName: jsii.String(name), DimensionsMap: &dims,
				Statistic: jsii.String("Sum"), Period: one,
			})},
			Period: one, Label: jsii.String(label),
		})
	}
	deliver := r.functions["deliver"]
	rows := []*[]awscloudwatch.IWidget{
		{
			awscloudwatch.NewTextWidget(&awscloudwatch.TextWidgetProps{Width: jsii.Number(24), Height: jsii.Number(2), Markdown: jsii.String(
				"# Agentry " + r.settings.Stage + " — scale\nA partition key takes 1,000 WCU/s and 3,000 RCU/s; the table and each index 40,000 each by default " +
					"(quota *Table-level write/read throughput limit*). The keys throttled are in Contributor Insights (DynamoDB console, table → Monitor). docs/scaling.md.")}),
		},
		{
			graph("Partition throttles (key range) / min", sum(keyRangeThrottles(r, one), "throttled by a partition's limit", one)),
			graph("Write units / s", consumed("ConsumedWriteCapacityUnits", "", "table"),
				consumed("ConsumedWriteCapacityUnits", awsres.GSI1, awsres.GSI1), consumed("ConsumedWriteCapacityUnits", awsres.GSI2, awsres.GSI2)),
		},
		{
			graph("Read units / s", consumed("ConsumedReadCapacityUnits", "", "table"),
				consumed("ConsumedReadCapacityUnits", awsres.GSI1, awsres.GSI1), consumed("ConsumedReadCapacityUnits", awsres.GSI2, awsres.GSI2)),
			graph("Concurrent executions (max)",
				r.functions["api"].Metric(jsii.String("ConcurrentExecutions"), &awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: one, Label: jsii.String("api")}),
				deliver.Metric(jsii.String("ConcurrentExecutions"), &awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: one, Label: jsii.String(fmt.Sprintf("deliver (at most %d)", DeliverMaxConcurrency))})),
		},
	}
	awscloudwatch.NewDashboard(stack, jsii.String("ScaleDashboard"), &awscloudwatch.DashboardProps{
		DashboardName: jsii.String(r.names.Prefix + "-scale"),
		Widgets:       &rows,
	})
}
