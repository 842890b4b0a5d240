package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// deployDocs parses every YAML document of a deploy/ file into generic maps.
func deployDocs(t *testing.T, name string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d["apiVersion"] == nil || d["kind"] == nil {
			t.Fatalf("%s: a document without apiVersion and kind", name)
		}
		docs = append(docs, d)
	}
}

// at walks a path of map keys and list indexes.
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %q", path, k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no item %d", path, k)
			}
			v = l[k]
		}
	}
	return v
}

func argsOf(t *testing.T, container any) []string {
	var args []string
	for _, a := range at(t, container, "args").([]any) {
		args = append(args, a.(string))
	}
	return args
}

// The Deployment serves on the port its readiness probe (/health), the Prometheus annotations and the
// Service use, asks for a GPU, mounts the model its args name, and its args parse as kvc serve flags.
func TestDeployServe(t *testing.T) {
	docs := deployDocs(t, "kubernetes/serve.yaml")
	if len(docs) != 2 || docs[0]["kind"] != "Deployment" || docs[1]["kind"] != "Service" {
		t.Fatalf("want a Deployment and a Service")
	}
	pod := at(t, docs[0], "spec", "template")
	c := at(t, pod, "spec", "containers", 0)
	args := argsOf(t, c)
	if args[0] != "serve" {
		t.Fatalf("args %v", args)
	}
	var o serveOptions
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	o.register(fs)
	if err := parseArgsTo(fs, args[1:], io.Discard, io.Discard); err != nil || fs.NArg() != 0 {
		t.Fatalf("serve args %v: %v", args, err)
	}
	if at(t, c, "ports", 0, "containerPort") != o.port || at(t, c, "readinessProbe", "httpGet", "path") != "/health" ||
		at(t, c, "readinessProbe", "httpGet", "port") != at(t, c, "ports", 0, "name") {
		t.Fatalf("port %d, probe %v", o.port, at(t, c, "readinessProbe"))
	}
	ann := at(t, pod, "metadata", "annotations").(map[string]any)
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/path"] != "/metrics" || ann["prometheus.io/port"] != "8080" {
		t.Fatalf("annotations %v", ann)
	}
	if at(t, c, "resources", "limits", "nvidia.com/gpu") != 1 {
		t.Fatalf("no GPU limit")
	}
	mount := at(t, c, "volumeMounts", 0, "mountPath").(string)
	if !strings.HasPrefix(o.ef.model, mount+"/") || at(t, pod, "spec", "volumes", 0, "name") != at(t, c, "volumeMounts", 0, "name") {
		t.Fatalf("--model %s is not on the mounted volume %s", o.ef.model, mount)
	}
	if grace := at(t, pod, "spec", "terminationGracePeriodSeconds").(int); float64(grace) <= o.drainTimeout.Seconds() {
		t.Fatalf("terminationGracePeriodSeconds %d does not cover --drain-timeout %v", grace, o.drainTimeout)
	}
	sel := at(t, docs[1], "spec", "selector").(map[string]any)
	for k, v := range sel {
		if at(t, pod, "metadata", "labels", k) != v {
			t.Fatalf("the Service selects %s=%v, the pods are labelled %v", k, v, at(t, pod, "metadata", "labels"))
		}
	}
	if at(t, docs[1], "spec", "ports", 0, "targetPort") != at(t, c, "ports", 0, "name") {
		t.Fatalf("the Service targets another port")
	}
}

// The Indexed Job's JOB_COMPLETIONS equals its completions and its args are kvc generate's.
func TestDeployGenerateJob(t *testing.T) {
	docs := deployDocs(t, "kubernetes/generate-job.yaml")
	if len(docs) != 1 || docs[0]["kind"] != "Job" || at(t, docs[0], "spec", "completionMode") != "Indexed" {
		t.Fatalf("want one Indexed Job")
	}
	c := at(t, docs[0], "spec", "template", "spec", "containers", 0)
	env := at(t, c, "env", 0).(map[string]any)
	if env["name"] != "JOB_COMPLETIONS" || env["value"] != "8" || at(t, docs[0], "spec", "completions") != 8 {
		t.Fatalf("JOB_COMPLETIONS %v, completions %v", env, at(t, docs[0], "spec", "completions"))
	}
	if at(t, c, "resources", "limits", "nvidia.com/gpu") != 1 {
		t.Fatalf("no GPU limit")
	}
	args := argsOf(t, c)
	// The flags parse: the run gets as far as reading the (absent) input file.
	t.Setenv("JOB_COMPLETION_INDEX", "3")
	t.Setenv("JOB_COMPLETIONS", "8")
	_, err := runGenerate(args[1:], io.Discard, nil)
	if args[0] != "generate" || err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("generate args %v: %v", args, err)
	}
}

func TestDeploySlurm(t *testing.T) {
	p := filepath.Join("..", "..", "deploy", "slurm", "generate.sbatch")
	if out, err := exec.Command("bash", "-n", p).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", p, err, out)
	}
	data, _ := os.ReadFile(p)
	for _, want := range []string{"#SBATCH --array=0-", "#SBATCH --gres=gpu:1", `"$KVC" generate`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("%s has no %q", p, want)
		}
	}
}
