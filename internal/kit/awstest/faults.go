package awstest

import (
	"context"
	"slices"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/middleware"
)

// Faults shapes the answers of SDK calls through the real client's
// middleware stack (aws.Config.APIOptions), so that an adapter meets
// failures exactly where AWS would hand them to it; nothing of the client
// is replaced.
type Faults struct {
	// Fail sees each call's input (*dynamodb.PutItemInput,
	// *sqs.SendMessageInput, …) before it is sent; an error it returns is
	// the call's answer, and the call never reaches AWS (nor the SDK's
	// retries). It may also change the input.
	Fail func(in any) error
	// Edit may change the answer of a call that was made and succeeded.
	Edit func(in, out any)
	// After runs once a call was answered, whatever the answer.
	After func(in any)
}

// WithFaults returns a copy of cfg whose clients' calls go through f,
// outermost in the initialize step: f sees every call once, before the
// SDK's retries.
func WithFaults(cfg aws.Config, f Faults) aws.Config {
	cfg.APIOptions = append(slices.Clone(cfg.APIOptions), func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("testFaults", f.handle), middleware.Before)
	})
	return cfg
}

func (f Faults) handle(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	if f.Fail != nil {
		if err := f.Fail(in.Parameters); err != nil {
			return middleware.InitializeOutput{}, middleware.Metadata{}, err
		}
	}
	out, md, err := next.HandleInitialize(ctx, in)
	if err == nil && f.Edit != nil {
		f.Edit(in.Parameters, out.Result)
	}
	if f.After != nil {
		f.After(in.Parameters)
	}
	return out, md, err
}

// FailCalls fails every call of input type T that match accepts (nil:
// all of them), from the from-th such call on (1: all), with err.
func FailCalls[T any](from int, match func(T) bool, err error) func(any) error {
	var seen atomic.Int64
	return func(in any) error {
		v, ok := in.(T)
		if !ok || (match != nil && !match(v)) || seen.Add(1) < int64(from) {
			return nil
		}
		return err
	}
}

// FailFirst fails the first n calls of input type T that match accepts
// (nil: all of them) with err, and no later one.
func FailFirst[T any](n int, match func(T) bool, err error) func(any) error {
	var seen atomic.Int64
	return func(in any) error {
		v, ok := in.(T)
		if ok && (match == nil || match(v)) && seen.Add(1) <= int64(n) {
			return err
		}
		return nil
	}
}

// AnyOf fails a call when one of rules does, first rule first.
func AnyOf(rules ...func(any) error) func(any) error {
	return func(in any) error {
		for _, r := range rules {
			if err := r(in); err != nil {
				return err
			}
		}
		return nil
	}
}

// Counted counts the calls of input type T, and passes every call on to
// Rule (nil: none fails). Use its Fail as (or within) Faults.Fail.
type Counted[T any] struct {
	Rule func(any) error
	n    atomic.Int64
}

// Fail counts in and answers as Rule does.
func (c *Counted[T]) Fail(in any) error {
	if _, ok := in.(T); ok {
		c.n.Add(1)
	}
	if c.Rule == nil {
		return nil
	}
	return c.Rule(in)
}

// Calls is the number of calls of type T seen so far.
func (c *Counted[T]) Calls() int64 { return c.n.Load() }
