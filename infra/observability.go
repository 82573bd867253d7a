package main

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/jsii-runtime-go"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/kit/cfntemplate"
)

// The metrics the functions write as CloudWatch embedded metric format
// (EMF) log lines. docs/metrics.md is the contract with the functions'
// code; a test checks that it names every one of these.
const (
	MetricsNamespace = "Agentry"
	// DimDeployment is on every metric: the resource prefix
	// (AGENTRY_RESOURCE_PREFIX), so that stages sharing an account stay
	// apart.
	DimDeployment = "Deployment"
	// DimFunction is on ColdStart only: api, deliver or deadletter.
	DimFunction = "Function"

	MetricMessagesAccepted  = "MessagesAccepted"  // Count, api: per message accepted (202 or 200)
	MetricMessagesDelivered = "MessagesDelivered" // Count, deliver/api: per recipient delivered
	MetricDeliveryLatency   = "DeliveryLatencyMs" // Milliseconds, per recipient: accepted → delivered
	MetricDeliveryRetries   = "DeliveryRetries"   // Count, deliver: per retry scheduled
	MetricDeliveryFailures  = "DeliveryFailures"  // Count, deliver/deadletter: per recipient failed for good
	MetricDeadLettered      = "DeadLettered"      // Count, deadletter: per poison task settled
	MetricColdStart         = "ColdStart"         // Count, every function: 1 on the first invocation of an instance
	MetricSenderUnverified  = "SenderUnverified"  // Count, api: per message from another domain accepted unverified under the flag policy
)

// AllMetrics lists the EMF metrics above.
var AllMetrics = []string{MetricMessagesAccepted, MetricMessagesDelivered, MetricDeliveryLatency, MetricDeliveryRetries,
	MetricDeliveryFailures, MetricDeadLettered, MetricColdStart, MetricSenderUnverified}

// Alarm thresholds (tests assert them; README explains each).
const (
	// AlarmDLQThreshold: any message in the DLQ is a task that crashed
	// its worker repeatedly (or an unsettled dead letter).
	AlarmDLQThreshold = 0
	// Alarm5xxPercent of API requests answered 5xx over 5 minutes.
	Alarm5xxPercent = 1
	// AlarmOldestMessageSeconds: retries wait inside SQS at most 15
	// minutes (its delay limit) before becoming visible, so a visible
	// task older than that means the consumers are not keeping up.
	AlarmOldestMessageSeconds = 900
	// AlarmThrottles: any throttled Lambda invocation or DynamoDB request
	// in 5 minutes.
	AlarmThrottles = 0
)

// functionNames lists the functions, comma-separated.
func functionNames() string {
	names := make([]string, 0, len(functionSpecs))
	for _, f := range functionSpecs {
		names = append(names, f.Name)
	}
	return strings.Join(names, ",")
}

func newObservability(stack awscdk.Stack, r *resources) {
	s := r.settings
	topic := awssns.NewTopic(stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
		TopicName:   jsii.String(r.names.Prefix + "-alarms"),
		DisplayName: jsii.String("Agentry " + s.Stage + " alarms"),
		EnforceSSL:  jsii.Bool(true),
	})
	tagRole(topic, cfntemplate.RoleAlarmTopic)
	if s.AlarmEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(s.AlarmEmail), nil))
	}
	action := awscloudwatchactions.NewSnsAction(topic)

	one, five := awscdk.Duration_Minutes(jsii.Number(1)), awscdk.Duration_Minutes(jsii.Number(5))
	emf := func(name, stat, label string, extra map[string]string) awscloudwatch.Metric {
		dims := map[string]*string{DimDeployment: jsii.String(r.names.Prefix)}
		for k, v := range extra {
			dims[k] = jsii.String(v)
		}
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(MetricsNamespace), MetricName: jsii.String(name), DimensionsMap: &dims,
			Statistic: jsii.String(stat), Period: one, Label: jsii.String(label),
		})
	}
	sum := func(label string) *awscloudwatch.MetricOptions {
		return &awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: one, Label: jsii.String(label)}
	}
	graph := func(title string, width float64, left []awscloudwatch.IMetric, right []awscloudwatch.IMetric) awscloudwatch.IWidget {
		p := &awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Width: jsii.Number(width), Height: jsii.Number(6), Left: &left}
		if len(right) > 0 {
			p.Right = &right
		}
		return awscloudwatch.NewGraphWidget(p)
	}

	// --- alarms ---
	alarm := func(id, desc string, metric awscloudwatch.IMetric, threshold float64, periods, datapoints float64) awscloudwatch.Alarm {
		a := awscloudwatch.NewAlarm(stack, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmName:          jsii.String(fmt.Sprintf("%s-%s", r.names.Prefix, id)),
			AlarmDescription:   jsii.String(desc),
			Metric:             metric,
			Threshold:          jsii.Number(threshold),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			EvaluationPeriods:  jsii.Number(periods),
			DatapointsToAlarm:  jsii.Number(datapoints),
			// No data means no traffic, which is not an incident.
			TreatMissingData: awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		a.AddAlarmAction(action)
		a.AddOkAction(action)
		return a
	}
	var alarms []awscloudwatch.Alarm
	alarms = append(alarms, alarm("dlq-not-empty",
		"Tasks reached the delivery dead-letter queue (see the deadletter function's logs)",
		r.dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: one}),
		AlarmDLQThreshold, 1, 1))
	alarms = append(alarms, alarm("api-5xx-rate",
		fmt.Sprintf("More than %d%% of API requests failed with 5xx in two 5-minute periods", Alarm5xxPercent),
		awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			// IF avoids dividing by zero in quiet periods.
			Expression: jsii.String("IF(requests > 0, 100 * errors / requests, 0)"),
			UsingMetrics: &map[string]awscloudwatch.IMetric{
				"errors":   r.api.MetricServerError(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: five}),
				"requests": r.api.MetricCount(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: five}),
			},
			Period: five, Label: jsii.String("5xx %"),
		}),
		Alarm5xxPercent, 2, 2))
	alarms = append(alarms, alarm("oldest-message-age",
		"The oldest visible delivery task has waited too long: deliver is failing, throttled or too slow",
		r.queue.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: five}),
		AlarmOldestMessageSeconds, 2, 2))
	for _, f := range functionSpecs {
		alarms = append(alarms, alarm(f.Name+"-throttles",
			"The "+f.Name+" function was throttled (account concurrency or the event source's maximum concurrency)",
			r.functions[f.Name].MetricThrottles(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: five}),
			AlarmThrottles, 1, 1))
	}
	ddbThrottles := map[string]awscloudwatch.IMetric{
		"tr": r.table.Metric(jsii.String("ReadThrottleEvents"), &awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: five}),
		"tw": r.table.Metric(jsii.String("WriteThrottleEvents"), &awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: five}),
	}
	for i, g := range []string{awsres.GSI1, awsres.GSI2} {
		// GSI write throttles slow down writes to the table itself.
		ddbThrottles[fmt.Sprintf("gw%d", i+1)] = awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String("AWS/DynamoDB"), MetricName: jsii.String("WriteThrottleEvents"),
			DimensionsMap: &map[string]*string{"TableName": r.table.TableName(), "GlobalSecondaryIndexName": jsii.String(g)},
			Statistic:     jsii.String("Sum"), Period: five,
		})
	}
	alarms = append(alarms, alarm("dynamodb-throttles",
		"DynamoDB throttled reads or writes on the table or its indexes",
		awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String("FILL(tr, 0) + FILL(tw, 0) + FILL(gw1, 0) + FILL(gw2, 0)"), UsingMetrics: &ddbThrottles,
			Period: five, Label: jsii.String("throttled requests"),
		}),
		AlarmThrottles, 1, 1))

	// --- dashboard ---
	fnMetrics := func(get func(f functionSpec) awscloudwatch.IMetric) []awscloudwatch.IMetric {
		var m []awscloudwatch.IMetric
		for _, f := range functionSpecs {
			m = append(m, get(f))
		}
		return m
	}
	alarmRefs := make([]interfacesawscloudwatch.IAlarmRef, 0, len(alarms))
	for _, a := range alarms {
		alarmRefs = append(alarmRefs, a)
	}
	rows := []*[]awscloudwatch.IWidget{
		{
			awscloudwatch.NewTextWidget(&awscloudwatch.TextWidgetProps{Width: jsii.Number(24), Height: jsii.Number(2), Markdown: jsii.String(
				"# Agentry " + s.Stage + " — " + s.Domain + "\nMetrics: namespace `Agentry`, dimension `Deployment=" + r.names.Prefix +
					"` (docs/metrics.md). Logs: `/aws/lambda/" + r.names.Prefix + "-{" + functionNames() + "}`.")}),
		},
		{
			graph("Accepted messages and API requests / min", 8,
				[]awscloudwatch.IMetric{emf(MetricMessagesAccepted, "Sum", "accepted", nil)},
				[]awscloudwatch.IMetric{r.api.MetricCount(sum("requests"))}),
			graph("API 4xx / 5xx / min", 8, []awscloudwatch.IMetric{
				r.api.MetricClientError(sum("4xx")), r.api.MetricServerError(sum("5xx")),
			}, nil),
			graph("API latency (ms)", 8, []awscloudwatch.IMetric{
				r.api.MetricLatency(&awscloudwatch.MetricOptions{Statistic: jsii.String("p50"), Period: one, Label: jsii.String("p50")}),
				r.api.MetricLatency(&awscloudwatch.MetricOptions{Statistic: jsii.String("p99"), Period: one, Label: jsii.String("p99")}),
			}, nil),
		},
		{
			graph("Delivery latency, accepted → delivered (ms)", 12, []awscloudwatch.IMetric{
				emf(MetricDeliveryLatency, "p50", "p50", nil),
				emf(MetricDeliveryLatency, "p95", "p95", nil),
				emf(MetricDeliveryLatency, "p99", "p99", nil),
			}, nil),
			graph("Deliveries, retries, failures / min", 12, []awscloudwatch.IMetric{
				emf(MetricMessagesDelivered, "Sum", "delivered", nil),
				emf(MetricDeliveryRetries, "Sum", "retries", nil),
				emf(MetricDeliveryFailures, "Sum", "failed", nil),
				emf(MetricDeadLettered, "Sum", "dead-lettered", nil),
				emf(MetricSenderUnverified, "Sum", "accepted unverified (flag)", nil),
			}, nil),
		},
		{
			graph("Queue depth", 12, []awscloudwatch.IMetric{
				r.queue.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: one, Label: jsii.String("delivery visible")}),
				r.queue.MetricApproximateNumberOfMessagesNotVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: one, Label: jsii.String("delivery in flight / delayed")}),
				r.dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: one, Label: jsii.String("DLQ depth")}),
			}, nil),
			graph("Age of oldest message (s)", 12, []awscloudwatch.IMetric{
				r.queue.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: one, Label: jsii.String("delivery")}),
				r.dlq.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: one, Label: jsii.String("DLQ")}),
			}, nil),
		},
		{
			graph("Lambda errors / min", 6, fnMetrics(func(f functionSpec) awscloudwatch.IMetric {
				return r.functions[f.Name].MetricErrors(sum(f.Name))
			}), nil),
			graph("Lambda throttles / min", 6, fnMetrics(func(f functionSpec) awscloudwatch.IMetric {
				return r.functions[f.Name].MetricThrottles(sum(f.Name))
			}), nil),
			graph("Lambda duration p99 (ms)", 6, fnMetrics(func(f functionSpec) awscloudwatch.IMetric {
				return r.functions[f.Name].MetricDuration(&awscloudwatch.MetricOptions{Statistic: jsii.String("p99"), Period: one, Label: jsii.String(f.Name)})
			}), nil),
			graph("Cold starts / min", 6, fnMetrics(func(f functionSpec) awscloudwatch.IMetric {
				return emf(MetricColdStart, "Sum", f.Name, map[string]string{DimFunction: f.Name})
			}), nil),
		},
		{
			graph("DynamoDB throttled requests", 12, []awscloudwatch.IMetric{
				r.table.Metric(jsii.String("ReadThrottleEvents"), sum("read")),
				r.table.Metric(jsii.String("WriteThrottleEvents"), sum("write")),
			}, []awscloudwatch.IMetric{
				r.table.Metric(jsii.String("ConsumedWriteCapacityUnits"), sum("write units")),
			}),
			awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{
				Title: jsii.String("Alarms"), Width: jsii.Number(12), Height: jsii.Number(6), Alarms: &alarmRefs,
			}),
		},
	}
	dash := awscloudwatch.NewDashboard(stack, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName: jsii.String(r.names.Prefix),
		Widgets:       &rows,
	})
	awscdk.NewCfnOutput(stack, jsii.String("DashboardUrl"), &awscdk.CfnOutputProps{
		Description: jsii.String("CloudWatch dashboard"),
		Value: awscdk.Fn_Join(jsii.String(""), &[]*string{
			jsii.String("https://"), awscdk.Aws_REGION(), jsii.String(".console.aws.amazon.com/cloudwatch/home?region="),
			awscdk.Aws_REGION(), jsii.String("#dashboards/dashboard/"), dash.DashboardName(),
		}),
	})
	awscdk.NewCfnOutput(stack, jsii.String("AlarmTopicArn"), &awscdk.CfnOutputProps{
		Description: jsii.String("SNS topic the alarms notify (subscribe with -c alarmEmail=… or in the console)"),
		Value:       topic.TopicArn(),
	})
}
