package cfntemplate

import (
	"encoding/json"
	"fmt"
)

// stackTypes are the types moto's CloudFormation creates faithfully
// enough for the tests (see the package doc for what it drops of them,
// which Complete then sets).
func stackType(typ string) bool {
	switch typ {
	case TypeTable, TypeQueue, TypeBucket:
		return true
	}
	return false
}

// StackTemplate returns the template (JSON) to hand to CloudFormation:
// the resources of stackTypes, with their physical names moved from the
// template's prefix to prefix, the parameters they refer to, and nothing
// else: the snapshot's outputs refer to resources moto cannot model
// (an API Gateway v2 output makes CreateStack fail with HTTP 500), and
// its BootstrapVersion parameter is an SSM parameter type that moto
// resolves only when `cdk bootstrap` wrote it (else HTTP 500 as well).
// Each resource's references must stay inside the stack.
func StackTemplate(t *Template, prefix string) ([]byte, error) {
	r, err := newResolver(t, Options{Prefix: prefix}.withDefaults())
	if err != nil {
		return nil, err
	}
	resources := map[string]*Resource{}
	for _, id := range t.LogicalIDs("") {
		res := t.Resources[id]
		if !stackType(res.Type) {
			continue
		}
		if res.Condition != "" {
			return nil, fmt.Errorf("cfntemplate: %s has Condition %q; conditions are not supported", id, res.Condition)
		}
		moved, err := r.renamed(id)
		if err != nil {
			return nil, err
		}
		resources[id] = moved
	}
	params := map[string]Parameter{}
	for id, res := range resources {
		refs := map[string]bool{}
		references(res.Properties, refs)
		for ref := range refs {
			if p, ok := t.Parameters[ref]; ok {
				params[ref] = p
			} else if _, ok := resources[ref]; !ok && t.Resources[ref] != nil {
				return nil, fmt.Errorf("cfntemplate: %s refers to %s, which is not in the stack", id, ref)
			}
		}
	}
	md := map[string]any{}
	for k, v := range t.Metadata {
		md[k] = v
	}
	md[MetaPrefix] = prefix
	b, err := json.Marshal(Template{Metadata: md, Parameters: params, Resources: resources})
	if err != nil {
		return nil, fmt.Errorf("cfntemplate: %w", err)
	}
	return b, nil
}

// renamed is the resource with its name property (if it has one) set to
// its name under the new prefix, as the resolver derives it; the rest is
// left for CloudFormation to evaluate.
func (r *resolver) renamed(id string) (*Resource, error) {
	res := *r.t.Resources[id]
	prop := nameProperty[res.Type]
	if _, named := res.Properties[prop]; !named {
		return &res, nil
	}
	n, err := r.name(id)
	if err != nil {
		return nil, err
	}
	props := make(map[string]any, len(res.Properties))
	for k, v := range res.Properties {
		props[k] = v
	}
	props[prop] = n
	res.Properties = props
	return &res, nil
}
