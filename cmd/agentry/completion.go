package main

import (
	"fmt"
	"io"
	"strings"
)

// The completion scripts are static: generated from the command table
// when printed, so they know every command and subcommand of this binary.

func completionBash(inv *invocation, args []string) error {
	if _, err := inv.noFlags(args, 0, 0); err != nil {
		return err
	}
	writeBash(inv.stdout, rootCommand())
	return nil
}

func completionZsh(inv *invocation, args []string) error {
	if _, err := inv.noFlags(args, 0, 0); err != nil {
		return err
	}
	// zsh runs bash completion functions through bashcompinit.
	fmt.Fprintln(inv.stdout, "#compdef agentry\nautoload -U +X bashcompinit && bashcompinit")
	writeBash(inv.stdout, rootCommand())
	return nil
}

func names(cmds []*command) string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = c.name
	}
	return strings.Join(out, " ")
}

func writeBash(w io.Writer, root *command) {
	fmt.Fprintf(w, `# agentry shell completion (agentry completion bash)
_agentry() {
	local cur=${COMP_WORDS[COMP_CWORD]} words=""
	case $COMP_CWORD in
	1) words="%s help" ;;
	2)
		case ${COMP_WORDS[1]} in
`, names(root.subs))
	for _, c := range root.subs {
		if len(c.subs) > 0 {
			fmt.Fprintf(w, "\t\t%s) words=%q ;;\n", c.name, names(c.subs))
		}
	}
	fmt.Fprint(w, `		help) words="`+names(root.subs)+`" ;;
		esac ;;
	esac
	if [[ $cur == -* ]]; then
		words="-h --help --json"
	fi
	if [[ -n $words ]]; then
		COMPREPLY=($(compgen -W "$words" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -F _agentry agentry
`)
}
