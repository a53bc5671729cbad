// Command longfuncs lists the non-test Go functions longer than a limit
// (70 lines by default, counted from the func line to the closing brace),
// longest first. A function whose doc comment has a line starting with
// "Long:" says why its length is right; it is listed apart and does not
// count.
//
//	go run ./scripts/longfuncs [-max 70] [-all] [dir ...]   (default: .)
//
// It exits 1 when an unexplained function is over the limit.
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type long struct {
	pos       string
	name      string
	lines     int
	explained bool
}

func main() {
	limit := flag.Int("max", 70, "longest function allowed, in lines")
	all := flag.Bool("all", false, "list the explained functions too")
	flag.Parse()
	dirs := flag.Args()
	if len(dirs) == 0 {
		dirs = []string{"."}
	}
	var found []long
	fset := token.NewFileSet()
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != dir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
			if err != nil {
				return err
			}
			found = append(found, longFuncs(fset, f, *limit)...)
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "longfuncs:", err)
			os.Exit(2)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].lines > found[j].lines })
	unexplained := 0
	for _, l := range found {
		if !l.explained {
			unexplained++
		}
		if l.explained && !*all {
			continue
		}
		note := ""
		if l.explained {
			note = " (Long: explained)"
		}
		fmt.Printf("%4d %s %s%s\n", l.lines, l.pos, l.name, note)
	}
	fmt.Printf("%d functions over %d lines, %d without a Long: comment\n", len(found), *limit, unexplained)
	if unexplained > 0 {
		os.Exit(1)
	}
}

// longFuncs returns the functions and methods of f longer than limit.
func longFuncs(fset *token.FileSet, f *ast.File, limit int) []long {
	var out []long
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		start, end := fset.Position(fn.Pos()), fset.Position(fn.End())
		n := end.Line - start.Line + 1
		if n <= limit {
			continue
		}
		name := fn.Name.Name
		if fn.Recv != nil && len(fn.Recv.List) > 0 {
			name = "(" + typeName(fn.Recv.List[0].Type) + ")." + name
		}
		out = append(out, long{
			pos:       fmt.Sprintf("%s:%d", start.Filename, start.Line),
			name:      name,
			lines:     n,
			explained: explained(fn.Doc),
		})
	}
	return out
}

// explained reports whether a doc comment has a line starting "Long:".
func explained(doc *ast.CommentGroup) bool {
	if doc == nil {
		return false
	}
	for _, line := range strings.Split(doc.Text(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "Long:") {
			return true
		}
	}
	return false
}

// typeName names a receiver type: T, *T, T[P].
func typeName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return "*" + typeName(t.X)
	case *ast.Ident:
		return t.Name
	case *ast.IndexExpr:
		return typeName(t.X)
	case *ast.IndexListExpr:
		return typeName(t.X)
	}
	return "?"
}
