// Command infra is Agentry's CDK app: `make synth`, `make deploy` and
// `make destroy` run it through the CDK CLI pinned in package.json (see
// cdk.json). The stack itself is NewAgentryStack in stack.go, which the
// tests synthesize directly.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	s, err := SettingsFromContext(app.Node(), nil)
	if err == nil {
		err = s.checkLambdaDir()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentry infra:", err)
		os.Exit(1)
	}
	// No env: the stack is environment-agnostic, deployed to whatever
	// account and region the CLI's credentials name (CDK_DEFAULT_*).
	NewAgentryStack(app, s.Prefix, &AgentryStackProps{Settings: s})
	app.Synth(nil)
}
