package cfntemplate

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/agentry/agentry/internal/adapter/awsres"
)

// noValue is what Ref AWS::NoValue resolves to: the property (or list
// element) disappears, as CloudFormation does.
type noValueT struct{}

var noValue = noValueT{}

// physical is what a resource's Ref and Fn::GetAtt resolve to.
type physical struct {
	ref   string
	attrs map[string]string
}

// resolver evaluates the intrinsic functions of a template. Resources not
// yet created (and those never created) resolve to predicted values:
// AWS derives every ARN from the physical name, so a prediction is exact
// for ARNs; only queue URLs depend on the endpoint, and Create replaces
// predictions by the real values as soon as a resource exists.
type resolver struct {
	t        *Template
	region   string
	account  string
	params   map[string]string
	tplPfx   string // the prefix the template's names were derived from
	prefix   string // the prefix to derive names from instead
	actual   map[string]physical
	naming   map[string]bool // cycle guard while resolving names
	nameMemo map[string]string
}

func newResolver(t *Template, o Options) (*resolver, error) {
	r := &resolver{
		t: t, region: o.Region, account: o.Account, params: map[string]string{},
		actual: map[string]physical{}, naming: map[string]bool{}, nameMemo: map[string]string{},
	}
	for k, v := range o.Parameters {
		r.params[k] = v
	}
	if v, ok := t.Metadata[MetaPrefix]; ok {
		p, err := r.str(v)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", MetaPrefix, err)
		}
		r.tplPfx = p
	}
	r.prefix = o.Prefix
	if r.prefix == "" {
		r.prefix = r.tplPfx
	}
	if r.prefix == "" {
		return nil, fmt.Errorf("cfntemplate: the template has no %s metadata; pass Options.Prefix", MetaPrefix)
	}
	if _, err := awsres.NamesFor(r.prefix); err != nil {
		return nil, fmt.Errorf("cfntemplate: %w", err)
	}
	return r, nil
}

// nameProperty is the property that names a resource of each type.
var nameProperty = map[string]string{
	TypeTable:                       "TableName",
	TypeQueue:                       "QueueName",
	TypeBucket:                      "BucketName",
	TypeStateMachine:                "StateMachineName",
	"AWS::Lambda::Function":         "FunctionName",
	"AWS::Serverless::Function":     "FunctionName",
	"AWS::IAM::Role":                "RoleName",
	"AWS::SNS::Topic":               "TopicName",
	"AWS::SecretsManager::Secret":   "Name",
	"AWS::Logs::LogGroup":           "LogGroupName",
	"AWS::CloudWatch::Dashboard":    "DashboardName",
	"AWS::Serverless::StateMachine": "Name",
}

// maxNameLen keeps generated names within each service's limit.
var maxNameLen = map[string]int{TypeQueue: 80, TypeBucket: 63, TypeStateMachine: 80, TypeTable: 255}

// name is the physical name a resource gets under the new prefix: the
// template's own name with its prefix swapped, or, for resources the
// template leaves unnamed (CloudFormation would generate a name), one
// derived from the prefix — the bodies bucket gets awsres's name, so a
// configuration built from the prefix alone finds it.
func (r *resolver) name(id string) (string, error) {
	if n, ok := r.nameMemo[id]; ok {
		return n, nil
	}
	res := r.t.Resources[id]
	if r.naming[id] {
		return "", fmt.Errorf("cfntemplate: %s: its name refers to itself", id)
	}
	r.naming[id] = true
	defer delete(r.naming, id)
	var n string
	if v, ok := res.Properties[nameProperty[res.Type]]; ok {
		s, err := r.str(v)
		if err != nil {
			return "", fmt.Errorf("cfntemplate: %s name: %w", id, err)
		}
		switch {
		case r.tplPfx != "" && strings.HasPrefix(s, r.tplPfx):
			n = r.prefix + s[len(r.tplPfx):]
		case r.prefix == r.tplPfx:
			n = s
		default:
			n = r.prefix + "-" + s
		}
	} else if res.Type == TypeBucket && res.Role() == RoleBodiesBucket {
		names, _ := awsres.NamesFor(r.prefix)
		n = names.Bucket
	} else {
		n = r.prefix + "-" + strings.ToLower(id)
		fifo, _ := res.Properties["FifoQueue"].(bool)
		if l := maxNameLen[res.Type]; l > 0 && len(n) > l-5 {
			n = strings.TrimRight(n[:l-5], "-")
		}
		if res.Type == TypeQueue && fifo {
			n += ".fifo"
		}
	}
	r.nameMemo[id] = n
	return n, nil
}

// predicted returns what a resource's Ref and attributes will be.
func (r *resolver) predicted(id string) (physical, error) {
	if p, ok := r.actual[id]; ok {
		return p, nil
	}
	res := r.t.Resources[id]
	n, err := r.name(id)
	if err != nil {
		return physical{}, err
	}
	part, reg, acct := "aws", r.region, r.account
	switch res.Type {
	case TypeTable:
		arn := fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", part, reg, acct, n)
		return physical{ref: n, attrs: map[string]string{"Arn": arn, "StreamArn": arn + "/stream/1970-01-01T00:00:00.000"}}, nil
	case TypeQueue:
		url := fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%s", reg, acct, n)
		return physical{ref: url, attrs: map[string]string{
			"Arn": fmt.Sprintf("arn:%s:sqs:%s:%s:%s", part, reg, acct, n), "QueueName": n, "QueueUrl": url,
		}}, nil
	case TypeBucket:
		return physical{ref: n, attrs: map[string]string{
			"Arn": "arn:" + part + ":s3:::" + n, "DomainName": n + ".s3.amazonaws.com",
			"RegionalDomainName": n + ".s3." + reg + ".amazonaws.com",
		}}, nil
	case TypeStateMachine, "AWS::Serverless::StateMachine":
		arn := fmt.Sprintf("arn:%s:states:%s:%s:stateMachine:%s", part, reg, acct, n)
		return physical{ref: arn, attrs: map[string]string{"Arn": arn, "Name": n}}, nil
	case "AWS::IAM::Role":
		return physical{ref: n, attrs: map[string]string{"Arn": fmt.Sprintf("arn:%s:iam::%s:role/%s", part, acct, n), "RoleId": "AROA" + strings.ToUpper(id)}}, nil
	case "AWS::Lambda::Function", "AWS::Serverless::Function":
		return physical{ref: n, attrs: map[string]string{"Arn": fmt.Sprintf("arn:%s:lambda:%s:%s:function:%s", part, reg, acct, n)}}, nil
	case "AWS::SNS::Topic":
		arn := fmt.Sprintf("arn:%s:sns:%s:%s:%s", part, reg, acct, n)
		return physical{ref: arn, attrs: map[string]string{"TopicArn": arn, "TopicName": n}}, nil
	case "AWS::SecretsManager::Secret":
		arn := fmt.Sprintf("arn:%s:secretsmanager:%s:%s:secret:%s-AbCdEf", part, reg, acct, n)
		return physical{ref: arn, attrs: map[string]string{"Id": arn}}, nil
	}
	svc := "cloudformation"
	if f := strings.Split(res.Type, "::"); len(f) == 3 {
		svc = strings.ToLower(f[1])
	}
	return physical{ref: n, attrs: map[string]string{"Arn": fmt.Sprintf("arn:%s:%s:%s:%s:%s", part, svc, reg, acct, n)}}, nil
}

// value evaluates every intrinsic function in v.
func (r *resolver) value(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || strings.HasPrefix(k, "Fn::") {
					return r.intrinsic(k, arg)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			ev, err := r.value(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if ev != noValue {
				out[k] = ev
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(x))
		for i, e := range x {
			ev, err := r.value(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if ev != noValue {
				out = append(out, ev)
			}
		}
		return out, nil
	}
	return v, nil
}

// str evaluates v and requires a string (numbers and booleans are
// written as CloudFormation would pass them).
func (r *resolver) str(v any) (string, error) {
	ev, err := r.value(v)
	if err != nil {
		return "", err
	}
	return scalar(ev)
}

func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.Number:
		return x.String(), nil
	}
	return "", fmt.Errorf("expected a string, got %T", v)
}

func (r *resolver) intrinsic(fn string, arg any) (any, error) {
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("the Ref function wants a name, got %T", arg)
		}
		return r.ref(name)
	case "Fn::GetAtt":
		id, attr, err := getAttArgs(arg)
		if err != nil {
			return nil, err
		}
		return r.getAtt(id, attr)
	case "Fn::Join":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, fmt.Errorf("Fn::Join: want [separator, list]")
		}
		sep, ok := a[0].(string)
		if !ok {
			return nil, fmt.Errorf("Fn::Join: separator must be a string")
		}
		lv, err := r.value(a[1])
		if err != nil {
			return nil, err
		}
		list, ok := lv.([]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Join: want a list, got %T", lv)
		}
		parts := make([]string, len(list))
		for i, e := range list {
			if parts[i], err = scalar(e); err != nil {
				return nil, fmt.Errorf("Fn::Join[%d]: %w", i, err)
			}
		}
		return strings.Join(parts, sep), nil
	case "Fn::Sub":
		return r.sub(arg)
	case "Fn::Select":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, fmt.Errorf("Fn::Select: want [index, list]")
		}
		is, err := r.str(a[0])
		if err != nil {
			return nil, err
		}
		i, err := strconv.Atoi(is)
		if err != nil {
			return nil, fmt.Errorf("Fn::Select: index %q", is)
		}
		lv, err := r.value(a[1])
		if err != nil {
			return nil, err
		}
		list, ok := lv.([]any)
		if !ok || i < 0 || i >= len(list) {
			return nil, fmt.Errorf("Fn::Select: index %d out of range", i)
		}
		return list[i], nil
	case "Fn::Split":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, fmt.Errorf("Fn::Split: want [separator, string]")
		}
		sep, _ := a[0].(string)
		s, err := r.str(a[1])
		if err != nil {
			return nil, err
		}
		var out []any
		for _, p := range strings.Split(s, sep) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::GetAZs":
		return []any{r.region + "a", r.region + "b", r.region + "c"}, nil
	case "Fn::Base64":
		s, err := r.str(arg)
		if err != nil {
			return nil, err
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	case "Fn::ToJsonString":
		v, err := r.value(arg)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(v)
		return string(b), err
	}
	// Fn::If and friends need Conditions; Agentry's stateful resources
	// use none, and guessing a branch would create the wrong thing.
	return nil, fmt.Errorf("%s is not supported", fn)
}

func (r *resolver) ref(name string) (any, error) {
	switch name {
	case "AWS::Region":
		return r.region, nil
	case "AWS::AccountId":
		return r.account, nil
	case "AWS::Partition":
		return "aws", nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	case "AWS::StackName":
		return r.prefix, nil
	case "AWS::StackId":
		return fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/00000000-0000-0000-0000-000000000000", r.region, r.account, r.prefix), nil
	case "AWS::NoValue":
		return noValue, nil
	case "AWS::NotificationARNs":
		return []any{}, nil
	}
	if v, ok := r.params[name]; ok {
		return v, nil
	}
	if p, ok := r.t.Parameters[name]; ok {
		if p.Default == nil {
			return nil, fmt.Errorf("parameter %s has no default; pass it in Options.Parameters", name)
		}
		return p.Default, nil
	}
	if _, ok := r.t.Resources[name]; !ok {
		return nil, fmt.Errorf("the Ref to %s: no such parameter or resource", name)
	}
	p, err := r.predicted(name)
	if err != nil {
		return nil, err
	}
	return p.ref, nil
}

func (r *resolver) getAtt(id, attr string) (any, error) {
	res, ok := r.t.Resources[id]
	if !ok {
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: no such resource", id, attr)
	}
	p, err := r.predicted(id)
	if err != nil {
		return nil, err
	}
	if v, ok := p.attrs[attr]; ok {
		return v, nil
	}
	if creatable(res.Type) {
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: attribute not supported for %s", id, attr, res.Type)
	}
	// A resource we never create: any stable placeholder will do.
	return p.ref + "." + attr, nil
}

func getAttArgs(arg any) (string, string, error) {
	switch a := arg.(type) {
	case string:
		if id, attr, ok := strings.Cut(a, "."); ok {
			return id, attr, nil
		}
	case []any:
		if len(a) == 2 {
			id, ok1 := a[0].(string)
			attr, ok2 := a[1].(string)
			if ok1 && ok2 {
				return id, attr, nil
			}
		}
	}
	return "", "", fmt.Errorf("Fn::GetAtt: want [LogicalId, Attribute], got %v", arg)
}

var subVarRE = regexp.MustCompile(`\$\{([^}!][^}]*)\}`)

// subAnyRE matches every ${...}, literals included.
var subAnyRE = regexp.MustCompile(`\$\{([^}]*)\}`)

// subVariables lists the ${...} names of a Fn::Sub string (not ${!...},
// which is a literal).
func subVariables(s string) []string {
	var out []string
	for _, m := range subVarRE.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	return out
}

func (r *resolver) sub(arg any) (any, error) {
	var tmpl string
	vars := map[string]string{}
	switch a := arg.(type) {
	case string:
		tmpl = a
	case []any:
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::Sub: want string or [string, variables]")
		}
		s, ok := a[0].(string)
		if !ok {
			return nil, fmt.Errorf("Fn::Sub: template must be a string")
		}
		tmpl = s
		m, ok := a[1].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Sub: variables must be a map")
		}
		for k, v := range m {
			s, err := r.str(v)
			if err != nil {
				return nil, fmt.Errorf("Fn::Sub variable %s: %w", k, err)
			}
			vars[k] = s
		}
	default:
		return nil, fmt.Errorf("Fn::Sub: want string or [string, variables]")
	}
	var firstErr error
	out := subAnyRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := strings.TrimSpace(m[2 : len(m)-1])
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		if v, ok := vars[name]; ok {
			return v
		}
		var v any
		var err error
		if id, attr, ok := strings.Cut(name, "."); ok {
			v, err = r.getAtt(id, attr)
		} else {
			v, err = r.ref(name)
		}
		if err == nil {
			var s string
			if s, err = scalar(v); err == nil {
				return s
			}
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("Fn::Sub ${%s}: %w", name, err)
		}
		return m
	})
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}
