package bench

import (
	"fmt"

	"github.com/agentry/agentry/internal/kit/awstest"
)

// awsHost stands in for testing.TB when the bench uses awstest (moto on
// loopback, resources from the synthesized template): a fatal report ends
// the call that made it, as t.Fatalf ends a test, and withAWS turns it
// into an error.
type awsHost struct{}

type awsFatal struct{ err error }

func (awsHost) Helper() {}

func (awsHost) Fatalf(format string, args ...any) {
	panic(awsFatal{fmt.Errorf(format, args...)})
}

var _ awstest.TB = awsHost{}

// withAWS runs f with a host for awstest and returns what it reported as
// fatal, if anything. Other panics are not ours to hide.
func withAWS(f func(t awstest.TB)) (err error) {
	defer func() {
		if v := recover(); v != nil {
			fatal, ok := v.(awsFatal)
			if !ok {
				panic(v)
			}
			err = fatal.err
		}
	}()
	f(awsHost{})
	return nil
}
