// Package itemsize computes a DynamoDB item's size as DynamoDB meters it.
//
// Two users need the same rule: the dynamo adapter decides with it whether
// a message body still fits inline (the 400 KB item limit), and the
// bench's cost meter (internal/kit/awscost) turns sizes into billed units. It
// lives here, beside the adapter and importing only the SDK's attribute
// types, so that production code depends on it without linking the bench.
package itemsize

import (
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Of is an item's size: for each attribute the UTF-8 length of its name
// plus the size of its value (developer guide, "Item sizes and formats").
func Of(it map[string]types.AttributeValue) int {
	n := 0
	for name, v := range it {
		n += len(name) + Value(v)
	}
	return n
}

// Value is the metered size of one attribute value: strings by their
// UTF-8 bytes, binaries by their length, numbers about one byte per two
// significant digits plus one, booleans and nulls one byte, lists and maps
// three bytes plus one per element (and a map element's name), sets the
// sum of their elements.
func Value(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return numberSize(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		return sumOf(v.Value, func(s string) int { return len(s) })
	case *types.AttributeValueMemberNS:
		return sumOf(v.Value, numberSize)
	case *types.AttributeValueMemberBS:
		return sumOf(v.Value, func(b []byte) int { return len(b) })
	case *types.AttributeValueMemberL:
		return 3 + sumOf(v.Value, func(e types.AttributeValue) int { return 1 + Value(e) })
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + Value(e)
		}
		return n
	}
	return 0
}

func sumOf[T any](xs []T, size func(T) int) int {
	n := 0
	for _, x := range xs {
		n += size(x)
	}
	return n
}

// numberSize: leading and trailing zeros do not count, nor do the sign,
// the decimal point or an exponent.
func numberSize(s string) int {
	s = strings.TrimLeft(s, "+-")
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		s = s[:i]
	}
	s = strings.ReplaceAll(s, ".", "")
	s = strings.Trim(s, "0")
	digits := utf8.RuneCountInString(s)
	return (digits+1)/2 + 1
}
