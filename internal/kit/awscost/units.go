package awscost

import (
	"math"
	"reflect"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/agentry/agentry/internal/adapter/dynamo/itemsize"
)

// Item is a DynamoDB item as the SDK carries it.
type Item = map[string]types.AttributeValue

// DynamoDB's metering sizes (developer guide, "Read/write capacity mode"
// and "Item sizes and formats").
const (
	writeUnitBytes = 1024     // one write request unit writes up to 1 KB
	readUnitBytes  = 4 * 1024 // one read request unit reads up to 4 KB, strongly consistent
)

// ItemSize is an item's size as DynamoDB meters it; the rule is the
// dynamo adapter's (itemsize), so that the bill and the inline-body limit
// agree.
func ItemSize(it Item) int { return itemsize.Of(it) }

// WriteUnits is what writing (or deleting) an item of this size costs
// outside a transaction: one unit per KB started, at least one.
func WriteUnits(size int) float64 {
	return math.Max(1, math.Ceil(float64(size)/writeUnitBytes))
}

// ReadUnits is what reading this many bytes costs: one unit per 4 KB
// started, at least one, halved for an eventually consistent read. A
// Query or Scan is metered on the sum of the items it read, a GetItem or
// each item of a BatchGetItem on its own size.
func ReadUnits(size int, consistent bool) float64 {
	u := math.Max(1, math.Ceil(float64(size)/readUnitBytes))
	if !consistent {
		u /= 2
	}
	return u
}

// Projections of a secondary index.
const (
	projectAll      = string(types.ProjectionTypeAll)
	projectKeysOnly = string(types.ProjectionTypeKeysOnly)
	projectInclude  = string(types.ProjectionTypeInclude)
)

// tableSchema is what the unit rules need to know of a table.
type tableSchema struct {
	keys    []string // partition key, then sort key if any
	indexes []indexSchema
}

type indexSchema struct {
	name       string
	keys       []string
	projection string
	include    []string // the non-key attributes of an INCLUDE projection
}

// keyOf returns the primary key of it, or nil if it lacks one.
func (s *tableSchema) keyOf(it Item) Item {
	k := make(Item, len(s.keys))
	for _, name := range s.keys {
		v, ok := it[name]
		if !ok {
			return nil
		}
		k[name] = v
	}
	return k
}

// entry is it's entry in the index, or nil when it has none: an item
// lacking any of the index's key attributes is not in the index.
func (s *tableSchema) entry(ix indexSchema, it Item) Item {
	if it == nil {
		return nil
	}
	e := Item{}
	for _, name := range ix.keys {
		v, ok := it[name]
		if !ok {
			return nil
		}
		e[name] = v
	}
	for _, name := range s.keys {
		if v, ok := it[name]; ok {
			e[name] = v
		}
	}
	switch ix.projection {
	case projectAll:
		for name, v := range it {
			e[name] = v
		}
	case projectInclude:
		for _, name := range ix.include {
			if v, ok := it[name]; ok {
				e[name] = v
			}
		}
	}
	return e
}

// indexWrites is what a write that turned before into after (nil for a
// missing item) costs in the table's secondary indexes, and how many
// index entries it wrote: nothing when the item is in no index before or
// after, or when neither its index keys nor its projected attributes
// changed; one write to put a new entry, to delete an old one, or to
// update projected attributes in place; two (delete and put) when an index
// key changed. Each write is metered on the entry's size, 1 KB per unit.
func (s *tableSchema) indexWrites(before, after Item) (units float64, entries int) {
	for _, ix := range s.indexes {
		b, a := s.entry(ix, before), s.entry(ix, after)
		switch {
		case b == nil && a == nil:
		case b == nil:
			units += WriteUnits(ItemSize(a))
			entries++
		case a == nil:
			units += WriteUnits(ItemSize(b))
			entries++
		case !sameAttrs(b, a, ix.keys):
			units += WriteUnits(ItemSize(b)) + WriteUnits(ItemSize(a))
			entries += 2
		case !reflect.DeepEqual(b, a):
			units += WriteUnits(ItemSize(a))
			entries++
		}
	}
	return units, entries
}

func sameAttrs(a, b Item, names []string) bool {
	for _, n := range names {
		if !reflect.DeepEqual(a[n], b[n]) {
			return false
		}
	}
	return true
}

// writeKind is what one item write does.
type writeKind int

const (
	writePut writeKind = iota
	writeUpdate
	writeDelete
	writeCheck // a transaction's ConditionCheck: reads the item, changes nothing
)

// writeCost is what one item write costs, in the table and in its
// indexes. A successful put or update is metered on the larger of the
// item before and after, a delete on the item deleted (at least one unit
// even if there was none), a transaction's condition check on the item
// checked. A write whose condition failed is still billed, on the size
// of the existing item (at least one unit), and writes no index entry.
// Inside a transaction every item costs twice; index writes, made after
// the commit, are not doubled.
func (s *tableSchema) writeCost(kind writeKind, before, after Item, transactional, failed bool) (table, index float64) {
	switch {
	case failed || kind == writeCheck:
		table = WriteUnits(ItemSize(before))
	case kind == writeDelete:
		table = WriteUnits(ItemSize(before))
		index, _ = s.indexWrites(before, nil)
	default:
		table = WriteUnits(max(ItemSize(before), ItemSize(after)))
		index, _ = s.indexWrites(before, after)
	}
	if transactional {
		table *= 2
	}
	return table, index
}
