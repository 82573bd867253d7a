// Package observe is Agentry's observability: structured JSON logs that
// carry request and message correlation ids, CloudWatch embedded metric
// format (EMF) metrics, and X-Ray tracing of AWS SDK calls and outbound
// HTTP.
//
// Everything tied to a particular telemetry backend stays inside this
// package. In particular it is the only importer of aws-xray-sdk-go, which
// is in maintenance mode since 2026-02-25 and unsupported after
// 2027-02-25: replacing it with an OpenTelemetry exporter means rewriting
// xray.go here and nothing else.
//
// Dependencies point inward: the core (gateway, delivery) declares its own
// Metrics ports and never imports this package; EMF satisfies them
// structurally. Correlation ids travel in the context through the
// stdlib-only leaf package observe/logctx, which the core and the HTTP
// handler write and this package's log handler reads.
package observe
