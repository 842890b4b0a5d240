package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"kvc/model"
)

// listedModel is one model kvc list shows.
type listedModel struct {
	Name   string // what --model takes
	Path   string
	Format string
	Bytes  int64 // the file, or the whole folder
	Cache  bool  // in kvc's download cache (kvc rm removes it)
}

// findModels lists the models under each model folder ($KVC_MODELS, then the cache): files and folders at
// the top, and ORG/REPO folders one level down, that open as checkpoints.
func findModels() []listedModel {
	var out []listedModel
	seen := map[string]bool{}
	cache := cacheDir()
	for _, dir := range modelDirs() {
		var visit func(rel string, depth int)
		visit = func(rel string, depth int) {
			ents, err := os.ReadDir(filepath.Join(dir, rel))
			if err != nil {
				return
			}
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") {
					continue
				}
				name := filepath.ToSlash(filepath.Join(rel, e.Name()))
				p := filepath.Join(dir, name)
				if !e.IsDir() && !isCheckpointName(e.Name()) {
					continue
				}
				ck, err := model.Open(modelInDir(p))
				if err != nil {
					if e.IsDir() && depth == 0 {
						visit(name, 1)
					}
					continue
				}
				format := ck.Format
				ck.Close()
				if seen[name] { // an earlier folder shadows this one
					continue
				}
				seen[name] = true
				out = append(out, listedModel{Name: name, Path: p, Format: format, Bytes: treeBytes(p), Cache: dir == cache})
			}
		}
		visit("", 0)
	}
	return out
}

func isCheckpointName(n string) bool {
	n = strings.TrimSuffix(n, ".zst")
	return (strings.HasSuffix(n, ".bin") && !strings.HasPrefix(n, "tok")) || strings.HasSuffix(n, ".gguf") || strings.HasSuffix(n, ".safetensors")
}

// treeBytes is a file's size, or the sum of a folder's files.
func treeBytes(p string) int64 {
	var n int64
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if st, err := d.Info(); err == nil {
				n += st.Size()
			}
		}
		return nil
	})
	return n
}

func cmdList(args []string) error { return list(args, os.Stdout) }

func list(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	names := fs.Bool("names", false, "names only, one per line (for shell completion)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q: kvc list [--names]", fs.Arg(0))}
	}
	ms := findModels()
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	if *names {
		for _, m := range ms {
			fmt.Fprintln(out, m.Name)
		}
		return nil
	}
	if len(ms) == 0 {
		fmt.Fprintf(out, "no models under %s (set $KVC_MODELS, or kvc pull NAME)\n", strings.Join(modelDirs(), ", "))
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFORMAT\tSIZE\tWHERE")
	for _, m := range ms {
		where := filepath.Dir(m.Path)
		if m.Cache {
			where = "cache (" + where + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, m.Format, fmtBytes(m.Bytes), where)
	}
	return tw.Flush()
}

func cmdRm(args []string) error {
	fs := flag.NewFlagSet("rm", flag.ContinueOnError)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{fmt.Errorf("usage: kvc rm NAME... (a model kvc pull downloaded; kvc list shows them)")}
	}
	ms := findModels()
	for _, name := range fs.Args() {
		var hit *listedModel
		for i := range ms {
			if ms[i].Name == name && ms[i].Cache {
				hit = &ms[i]
				break
			}
		}
		if hit == nil {
			for _, m := range ms {
				if m.Name == name {
					return fmt.Errorf("%s is in %s, not in kvc's cache: kvc rm only removes downloads (delete the file yourself)", name, filepath.Dir(m.Path))
				}
			}
			return fmt.Errorf("no model %q in the cache %s (kvc list shows the models)", name, cacheDir())
		}
		if err := os.RemoveAll(hit.Path); err != nil {
			return err
		}
		// An ORG/REPO folder left empty goes too.
		if parent := filepath.Dir(hit.Path); parent != cacheDir() {
			os.Remove(parent)
		}
		fmt.Printf("removed %s (%s)\n", name, fmtBytes(hit.Bytes))
	}
	return nil
}
