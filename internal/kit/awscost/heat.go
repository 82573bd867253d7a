package awscost

import (
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Partition is one partition key value of a table or of one of its
// secondary indexes: the unit DynamoDB's per-partition throughput limits
// (1,000 write units and 3,000 read units a second) apply to, since a
// partition key value whose sort keys keep growing cannot be split for
// heat.
type Partition struct {
	Table string
	// Index is the secondary index's name, empty for the base table.
	Index string
	// Key is the partition key's value (strings as they are, other types
	// as DynamoDB renders them).
	Key string
}

func (p Partition) String() string {
	if p.Index == "" {
		return p.Key
	}
	return p.Index + " " + p.Key
}

// Load is what some calls spent on one partition.
type Load struct {
	WriteUnits, ReadUnits float64
}

// Heat is the load by partition.
type Heat map[Partition]Load

func (h Heat) add(p Partition, write, read float64) {
	l := h[p]
	l.WriteUnits += write
	l.ReadUnits += read
	h[p] = l
}

// Hottest lists the partitions by load, heaviest first by the given
// measure, at most n (0 for all).
func (h Heat) Hottest(n int, by func(Load) float64) []Partition {
	out := make([]Partition, 0, len(h))
	for p := range h {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := by(h[out[i]]), by(h[out[j]])
		if a != b {
			return a > b
		}
		return out[i].String() < out[j].String()
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// TrackPartitions turns on (or off) the breakdown of DynamoDB units by
// partition key, which TakeHeat returns. It is off by default: the cost
// scenario has no use for it.
func (c *Counter) TrackPartitions(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on && c.heat == nil {
		c.heat = Heat{}
	}
	if !on {
		c.heat = nil
	}
}

// TakeHeat returns the load by partition since the last TakeHeat (or
// since TrackPartitions) and starts again from zero.
func (c *Counter) TakeHeat() Heat {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.heat
	if h != nil {
		c.heat = Heat{}
	}
	return h
}

// heatOf collects what one call spent by partition, to be added to the
// Counter's heat at once.
type heatOf struct{ Heat }

func (c *Counter) tracking() *heatOf {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.heat == nil {
		return nil
	}
	return &heatOf{Heat{}}
}

func (c *Counter) addHeat(h *heatOf) {
	if h == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.heat == nil {
		return
	}
	for p, l := range h.Heat {
		c.heat.add(p, l.WriteUnits, l.ReadUnits)
	}
}

func (h *heatOf) write(p Partition, units float64) {
	if h != nil && p.Key != "" {
		h.add(p, units, 0)
	}
}

func (h *heatOf) read(p Partition, units float64) {
	if h != nil && p.Key != "" {
		h.add(p, 0, units)
	}
}

// keyText renders a key attribute's value.
func keyText(v types.AttributeValue) string {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	case *types.AttributeValueMemberB:
		return string(v.Value)
	}
	return ""
}

// tablePartition is the base table partition an item (or key) is in.
func (s *tableSchema) tablePartition(table string, it Item) Partition {
	if len(s.keys) == 0 {
		return Partition{Table: table}
	}
	return Partition{Table: table, Key: keyText(it[s.keys[0]])}
}

// indexWritesBy is indexWrites broken down by the index partition each
// entry write lands in: a removed entry is written in its old partition,
// a new one in its new partition.
func (s *tableSchema) indexWritesBy(table string, before, after Item, h *heatOf) {
	if h == nil {
		return
	}
	for _, ix := range s.indexes {
		b, a := s.entry(ix, before), s.entry(ix, after)
		part := func(e Item) Partition { return Partition{Table: table, Index: ix.name, Key: keyText(e[ix.keys[0]])} }
		switch {
		case b == nil && a == nil:
		case b == nil:
			h.write(part(a), WriteUnits(ItemSize(a)))
		case a == nil:
			h.write(part(b), WriteUnits(ItemSize(b)))
		case !sameAttrs(b, a, ix.keys):
			h.write(part(b), WriteUnits(ItemSize(b)))
			h.write(part(a), WriteUnits(ItemSize(a)))
		case !reflect.DeepEqual(b, a):
			h.write(part(a), WriteUnits(ItemSize(a)))
		}
	}
}

// hashEquality matches "<name placeholder> = <value placeholder>" in a key
// condition.
var hashEquality = regexp.MustCompile(`(#[A-Za-z0-9_]+)\s*=\s*(:[A-Za-z0-9_]+)`)

// queryPartition is the partition a Query reads: the value its key
// condition gives the (index's) partition key.
func (s *tableSchema) queryPartition(in *dynamodb.QueryInput) Partition {
	table := aws.ToString(in.TableName)
	p := Partition{Table: table, Index: aws.ToString(in.IndexName)}
	hash := ""
	if p.Index == "" {
		if len(s.keys) > 0 {
			hash = s.keys[0]
		}
	} else {
		for _, ix := range s.indexes {
			if ix.name == p.Index && len(ix.keys) > 0 {
				hash = ix.keys[0]
			}
		}
	}
	for _, m := range hashEquality.FindAllStringSubmatch(aws.ToString(in.KeyConditionExpression), -1) {
		if strings.EqualFold(in.ExpressionAttributeNames[m[1]], hash) {
			p.Key = keyText(in.ExpressionAttributeValues[m[2]])
		}
	}
	return p
}
