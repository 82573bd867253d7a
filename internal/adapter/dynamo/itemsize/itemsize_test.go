package itemsize

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
)

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

func TestValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    types.AttributeValue
		want int
	}{
		{"string", s("héllo"), 6}, // UTF-8 bytes
		{"binary", &types.AttributeValueMemberB{Value: []byte{1, 2, 3}}, 3},
		{"zero", n("0"), 1},
		{"one digit", n("7"), 2},
		{"two digits", n("42"), 2},
		{"three digits", n("123"), 3},
		{"zeros trimmed", n("-000120.500"), 3}, // 1205: two bytes for four digits, plus one
		{"exponent ignored", n("1.5E+10"), 2},
		{"bool", &types.AttributeValueMemberBOOL{Value: true}, 1},
		{"null", &types.AttributeValueMemberNULL{Value: true}, 1},
		{"empty list", &types.AttributeValueMemberL{}, 3},
		{"list", &types.AttributeValueMemberL{Value: []types.AttributeValue{s("ab"), n("1")}}, 3 + 1 + 2 + 1 + 2},
		{"map", &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": s("ab")}}, 3 + 1 + 1 + 2},
		{"string set", &types.AttributeValueMemberSS{Value: []string{"ab", "c"}}, 3},
		{"number set", &types.AttributeValueMemberNS{Value: []string{"1", "22"}}, 4},
		{"binary set", &types.AttributeValueMemberBS{Value: [][]byte{{1}, {2, 3}}}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Value(tc.v))
		})
	}
}

func TestOf(t *testing.T) {
	assert.Equal(t, len("pk")+3+len("n")+2, Of(map[string]types.AttributeValue{"pk": s("abc"), "n": n("5")}))
	assert.Zero(t, Of(nil))
}
