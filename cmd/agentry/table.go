package main

// commandTable is every command of agentry, in the order help lists them.
func commandTable() []*command {
	return []*command{
		{name: "serve", summary: "run the gateway in the foreground (configured by AGENTRY_* variables)", run: runServe},
		{name: "healthcheck", args: "[flags]", summary: "exit 0 when the local gateway answers GET /readyz with 200, else 1 (the container's HEALTHCHECK)", run: runHealthcheck},
		{name: "dns-record", summary: "print the _amtp TXT record (and the signing key record) to publish", run: runDNSRecord},
		{name: "keygen", args: "[flags]", summary: "generate a signing key and print its key record", run: runKeygen},
		{name: "send", args: "[flags]", summary: "send a message", run: clientSend},
		{name: "status", args: "<message-id> [flags]", summary: "show a message's delivery status", run: clientStatus},
		{name: "inbox", args: "<recipient> [flags]", summary: "list (and acknowledge) a pull agent's inbox", run: clientInbox},
		{name: "ack", args: "<recipient> <message-id>", summary: "acknowledge one inbox message", run: clientAck},
		agentsCommand(),
		schemasCommand(),
		{name: "workflows", args: "show", summary: "coordinated workflows", subs: []*command{
			{name: "show", args: "<workflow-id> [flags]", summary: "show a workflow's state (its id is the coordination message's id)", run: workflowsShow},
		}},
		deadLettersCommand(),
		{name: "ingest-email", args: "[-to addr]... < message.eml", summary: "hand one received email to the email bridge", details: ingestDetails, run: runIngestEmail},
		storeCommandTable(),
		{name: "completion", args: "bash|zsh", summary: "print a shell completion script", subs: []*command{
			{name: "bash", summary: "bash completion: source <(agentry completion bash)", run: completionBash},
			{name: "zsh", summary: "zsh completion: source <(agentry completion zsh)", run: completionZsh},
		}},
		{name: "version", summary: "print the version", run: runVersion},
	}
}

const ingestDetails = `It goes through the running gateway's SMTP listener when AGENTRY_SMTP_LISTEN is set, else
straight into the data dir (the gateway stopped). Exit codes, as sendmail's: 0 accepted,
1 refused (the reason on stderr), 64 usage, 75 try again later.

flags:
  -to address   envelope recipient (repeatable); default the To and Cc addresses of our domain`

func storeCommandTable() *command {
	sub := func(name, args, summary string, n int) *command {
		return &command{name: name, args: args, summary: summary, run: func(inv *invocation, args []string) error {
			pos, err := inv.noFlags(args, n, n)
			if err != nil {
				return err
			}
			return storeCommand(append([]string{name}, pos...), inv.stdout, inv.stderr)
		}}
	}
	return &command{name: "store", args: "check|backup|restore", summary: "check, back up or restore the local gateway's store (AGENTRY_DATA_DIR)", subs: []*command{
		sub("check", "", "read every record of the stopped gateway's store; exit 1 naming what is damaged", 0),
		sub("backup", "<dir>", "write a consistent copy of the store to <dir> (which must not exist), the gateway running or not", 1),
		sub("restore", "<dir>", "with the gateway stopped, put the backup in <dir> in place of the store (the replaced one is kept)", 1),
	}}
}

func runServe(inv *invocation, args []string) error {
	if _, err := inv.noFlags(args, 0, 0); err != nil {
		return err
	}
	return serve(inv.stdout, inv.stderr)
}

func runDNSRecord(inv *invocation, args []string) error {
	if _, err := inv.noFlags(args, 0, 0); err != nil {
		return err
	}
	return dnsRecord(inv.stdout)
}

func runVersion(inv *invocation, args []string) error {
	if _, err := inv.noFlags(args, 0, 0); err != nil {
		return err
	}
	return printVersion(inv.stdout)
}

// runIngestEmail keeps ingest-email's own flag parsing and exit codes;
// only its help is the table's.
func runIngestEmail(inv *invocation, args []string) error {
	for _, a := range args {
		if isHelp(a) {
			inv.printHelp(nil)
			return errHelpShown
		}
	}
	return exitStatus(ingestEmail(args, inv.stdin, inv.stdout, inv.stderr))
}
