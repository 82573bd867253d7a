// Package deploytest checks the container and CI files at the top of the
// repository (Dockerfile, compose.yaml, .github/workflows/ci.yml), which no
// Docker engine on the build machine can run: what they promise is checked
// here instead, against the Makefile and the agentry binary itself.
package deploytest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const root = "../../.."

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	require.NoError(t, err)
	return string(b)
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	op, args string
}

func parseDockerfile(src string) []instruction {
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		op, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(op), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	return out
}

// stages splits the instructions at each FROM.
func stages(ins []instruction) [][]instruction {
	var out [][]instruction
	for _, in := range ins {
		if in.op == "FROM" {
			out = append(out, nil)
		}
		if len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], in)
		}
	}
	return out
}

func find(st []instruction, op string) []string {
	var out []string
	for _, in := range st {
		if in.op == op {
			out = append(out, in.args)
		}
	}
	return out
}

func index(st []instruction, op, contains string) int {
	return slices.IndexFunc(st, func(in instruction) bool { return in.op == op && strings.Contains(in.args, contains) })
}

// env reads the ENV instructions of a stage (KEY=value forms).
func env(st []instruction) map[string]string {
	out := map[string]string{}
	for _, a := range find(st, "ENV") {
		for _, kv := range strings.Fields(a) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				out[k] = v
			}
		}
	}
	return out
}

// execForm reads a JSON-array instruction argument (["a", "b"]).
func execForm(args string) []string {
	args = strings.TrimSpace(args)
	if !strings.HasPrefix(args, "[") || !strings.HasSuffix(args, "]") {
		return nil
	}
	var out []string
	for _, p := range strings.Split(args[1:len(args)-1], ",") {
		out = append(out, strings.Trim(strings.TrimSpace(p), `"`))
	}
	return out
}

// checkDockerfile lists what the Dockerfile misses of the essentials;
// ldflags is the Makefile's LDFLAGS.
func checkDockerfile(src, ldflags string) []string {
	var bad []string
	fail := func(format string, a ...any) { bad = append(bad, fmt.Sprintf(format, a...)) }
	st := stages(parseDockerfile(src))
	if len(st) < 2 {
		return []string{"not multi-stage: want a build stage and a runtime stage"}
	}
	build, final := st[0], st[len(st)-1]
	if !regexp.MustCompile(`^golang:1\.26\S* AS \w+$`).MatchString(build[0].args) {
		fail("build stage %q: want FROM golang:1.26 AS <name>", build[0].args)
	}
	mods, download, all := index(build, "COPY", "go.mod go.sum"), index(build, "RUN", "go mod download"), index(build, "COPY", ". .")
	if mods < 0 || download < mods || all < download {
		fail("build stage: want COPY go.mod go.sum, RUN go mod download, then COPY . . (modules in their own layer)")
	}
	gobuild := index(build, "RUN", "go build")
	want := strings.ReplaceAll(ldflags, "$(VERSION)", "${VERSION}")
	if gobuild < 0 {
		fail("build stage: no go build")
	} else {
		cmd := build[gobuild].args
		for _, w := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "` + want + `"`, "./cmd/agentry"} {
			if !strings.Contains(cmd, w) {
				fail("go build: missing %s", w)
			}
		}
	}
	users := find(final, "USER")
	if len(users) == 0 || slices.Contains([]string{"root", "0", "0:0", "root:root"}, users[len(users)-1]) {
		fail("runtime stage: want a non-root USER")
	}
	vars := env(final)
	if dir := vars["AGENTRY_DATA_DIR"]; dir == "" || !slices.ContainsFunc(find(final, "VOLUME"), func(v string) bool { return strings.Contains(v, `"`+dir+`"`) || v == dir }) {
		fail("runtime stage: want ENV AGENTRY_DATA_DIR and a VOLUME for it")
	}
	if addr := vars["AGENTRY_ADDR"]; !strings.HasPrefix(addr, "0.0.0.0:") && !strings.HasPrefix(addr, ":") {
		fail("runtime stage: AGENTRY_ADDR %q does not listen on every interface", addr)
	} else if port := addr[strings.LastIndex(addr, ":")+1:]; !slices.Contains(find(final, "EXPOSE"), port) {
		fail("runtime stage: want EXPOSE %s", port)
	}
	return bad
}

func makefileLDFLAGS(t *testing.T) string {
	m := regexp.MustCompile(`(?m)^LDFLAGS\s*:=\s*(.+)$`).FindStringSubmatch(readFile(t, "Makefile"))
	require.NotNil(t, m, "Makefile has no LDFLAGS")
	return strings.TrimSpace(m[1])
}

// TestDockerfileEssentials: the Dockerfile passes, and the checker finds
// each essential taken out of it.
func TestDockerfileEssentials(t *testing.T) {
	src, ldflags := readFile(t, "Dockerfile"), makefileLDFLAGS(t)
	require.Empty(t, checkDockerfile(src, ldflags))
	for _, tc := range []struct{ name, old, new, want string }{
		{"one stage", "FROM golang:1.26 AS build", "FROM scratch AS nothing\nFROM golang:1.26 AS build", "build stage"},
		{"modules not in their own layer", "RUN go mod download", "RUN true", "own layer"},
		{"no cgo flag", "CGO_ENABLED=0 ", "", "CGO_ENABLED=0"},
		{"other ldflags", "-s -w", "-s", "-ldflags"},
		{"root", "USER 65532:65532", "USER root", "non-root USER"},
		{"no volume", `VOLUME ["/data"]`, "", "VOLUME"},
		{"loopback only", "AGENTRY_ADDR=0.0.0.0:8080", "AGENTRY_ADDR=127.0.0.1:8080", "every interface"},
		{"port not exposed", "EXPOSE 8080", "EXPOSE 9090", "EXPOSE 8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, src, tc.old)
			bad := checkDockerfile(strings.Replace(src, tc.old, tc.new, 1), ldflags)
			assert.True(t, slices.ContainsFunc(bad, func(s string) bool { return strings.Contains(s, tc.want) }), "want %q in %q", tc.want, bad)
		})
	}
}

// TestDockerfileRunsCommandsTheBinaryHas: the image's ENTRYPOINT is the
// binary it copies in, and the binary answers the CMD and the
// HEALTHCHECK's command (asked for their help, so nothing runs).
func TestDockerfileRunsCommandsTheBinaryHas(t *testing.T) {
	final := stages(parseDockerfile(readFile(t, "Dockerfile")))
	require.GreaterOrEqual(t, len(final), 2)
	st := final[len(final)-1]
	entry := execForm(strings.Join(find(st, "ENTRYPOINT"), ""))
	require.Len(t, entry, 1, "ENTRYPOINT in exec form, the binary alone")
	require.GreaterOrEqual(t, index(st, "COPY", "/out/agentry "+entry[0]), 0, "the ENTRYPOINT is the binary copied from the build stage")
	health := find(st, "HEALTHCHECK")
	require.Len(t, health, 1)
	_, cmd, ok := strings.Cut(health[0], "CMD ")
	require.True(t, ok, "HEALTHCHECK CMD")
	probe := execForm(cmd)
	require.GreaterOrEqual(t, len(probe), 2, "HEALTHCHECK CMD in exec form: the image has no shell")
	require.Equal(t, entry[0], probe[0])
	serve := execForm(strings.Join(find(st, "CMD"), ""))

	bin := filepath.Join(t.TempDir(), "agentry")
	out, err := exec.Command("go", "build", "-o", bin, "../../../cmd/agentry").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, args := range [][]string{probe[1:], serve} {
		out, err := exec.Command(bin, append(slices.Clone(args), "-h")...).CombinedOutput()
		require.NoError(t, err, "agentry %v -h: %s", args, out)
		assert.Contains(t, string(out), "usage: agentry "+args[0])
	}
}

// TestComposeFile: compose.yaml is YAML naming the gateway (built from the
// Dockerfile, its data dir on a volume, its port the one exposed) and,
// under the aws profile, LocalStack and the gateway on the AWS backend
// pointed at it.
func TestComposeFile(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Build       string            `yaml:"build"`
			Profiles    []string          `yaml:"profiles"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
			Volumes     []string          `yaml:"volumes"`
			DependsOn   map[string]any    `yaml:"depends_on"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, "compose.yaml")), &c))
	require.ElementsMatch(t, []string{"gateway", "localstack", "gateway-aws"}, mapsKeys(c.Services))

	gw := c.Services["gateway"]
	assert.Equal(t, ".", gw.Build)
	assert.Empty(t, gw.Profiles, "the embedded gateway is the default")
	assert.Contains(t, gw.Volumes, "agentry-data:/data")
	assert.Contains(t, c.Volumes, "agentry-data")
	assert.Contains(t, gw.Ports, "127.0.0.1:8080:8080")

	ls := c.Services["localstack"]
	assert.Equal(t, []string{"aws"}, ls.Profiles)
	for _, v := range ls.Volumes {
		src, _, _ := strings.Cut(v, ":")
		assert.DirExists(t, filepath.Join(root, src))
	}
	aws := c.Services["gateway-aws"]
	assert.Equal(t, []string{"aws"}, aws.Profiles)
	assert.Equal(t, "aws", aws.Environment["AGENTRY_BACKEND"])
	assert.Equal(t, "http://localstack:4566", aws.Environment["AWS_ENDPOINT_URL"])
	assert.Contains(t, aws.DependsOn, "localstack")
}

func mapsKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestCIWorkflowRunsMakeTest: the workflow runs make test on the Go of
// go.mod (actionlint, in make test, checks the rest of it).
func TestCIWorkflowRunsMakeTest(t *testing.T) {
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				Uses string            `yaml:"uses"`
				Run  string            `yaml:"run"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, ".github/workflows/ci.yml")), &wf))
	var runs []string
	goFromMod := false
	for _, j := range wf.Jobs {
		for _, s := range j.Steps {
			runs = append(runs, s.Run)
			if strings.HasPrefix(s.Uses, "actions/setup-go@") && s.With["go-version-file"] == "go.mod" {
				goFromMod = true
			}
		}
	}
	assert.Contains(t, runs, "make test")
	assert.True(t, goFromMod, "actions/setup-go with go-version-file: go.mod")
}
