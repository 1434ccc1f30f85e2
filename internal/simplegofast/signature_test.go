package simplegofast

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// TestLinkedSignatures checks, from simplego's source, that the functions,
// the variable and the function type this package links to or mirrors have
// the signatures linkname.go declares. The linker binds //go:linkname by
// name only, so a changed signature would link and then corrupt memory;
// Enable's checkVersion keeps other GoMLX versions out at run time, and
// this test says what to change if the pinned version ever moves.
func TestLinkedSignatures(t *testing.T) {
	dir := simplegoDir(t)
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	pkg := pkgs["simplego"]
	if pkg == nil {
		t.Fatalf("no package simplego in %s", dir)
	}
	src := func(n ast.Node) string {
		var b bytes.Buffer
		if err := printer.Fprint(&b, fset, n); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	found := map[string]string{}
	for _, f := range pkg.Files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				name := d.Name.Name
				if d.Recv != nil && len(d.Recv.List) == 1 {
					name = "(" + src(d.Recv.List[0].Type) + ")." + name
				}
				found["func "+name] = src(d.Type)
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						found["type "+s.Name.Name] = src(s.Type)
					case *ast.ValueSpec:
						for i, n := range s.Names {
							v := ""
							if s.Type != nil {
								v = src(s.Type)
							}
							if i < len(s.Values) {
								v += " = " + src(s.Values[i])
							}
							found[d.Tok.String()+" "+n.Name] = strings.TrimSpace(v)
						}
					}
				}
			}
		}
	}
	// What linkname.go assumes, in simplego's own spelling.
	want := map[string]string{
		"func setNodeExecutor":              "func(opType backends.OpType, priority registerPriority, executor nodeExecutor)",
		"func (*Backend).getBufferForShape": "func(shape shapes.Shape) *Buffer",
		"type nodeExecutor":                 "func(backend *Backend, node *Node, inputs []*Buffer, inputsOwned []bool) (*Buffer, error)",
		"type registerPriority":             "int",
		"var nodeExecutors":                 "[backends.OpTypeLast]nodeExecutor",
		"const priorityUser":                "registerPriority = 100",
	}
	for k, w := range want {
		if g, ok := found[k]; !ok {
			t.Errorf("simplego (%s) has no %s", dir, k)
		} else if g != w {
			t.Errorf("simplego %s is %q; linkname.go assumes %q", k, g, w)
		}
	}
	// And the mirrors in linkname.go say the same, with sg* for simplego's types.
	mirror := map[string]reflect.Type{
		"func(backends.OpType, int, simplegofast.nodeExecutor)":                                                                 reflect.TypeOf(sgSetNodeExecutor),
		"func(*simplegofast.sgBackend, shapes.Shape) *simplegofast.sgBuffer":                                                    reflect.TypeOf(sgGetBufferForShape),
		"func(*simplegofast.sgBackend, *simplegofast.sgNode, []*simplegofast.sgBuffer, []bool) (*simplegofast.sgBuffer, error)": reflect.TypeFor[nodeExecutor](),
	}
	for w, typ := range mirror {
		if g := unnamedFunc(typ).String(); g != w {
			t.Errorf("mirror is %s, want %s", g, w)
		}
	}
	if reflect.TypeOf(sgNodeExecutors).Elem() != reflect.TypeFor[nodeExecutor]() {
		t.Errorf("sgNodeExecutors holds %s", reflect.TypeOf(sgNodeExecutors).Elem())
	}
	if priorityUser != 100 {
		t.Errorf("priorityUser = %d", priorityUser)
	}
}

// unnamedFunc is the unnamed func type with typ's signature.
func unnamedFunc(typ reflect.Type) reflect.Type {
	var in, out []reflect.Type
	for i := range typ.NumIn() {
		in = append(in, typ.In(i))
	}
	for i := range typ.NumOut() {
		out = append(out, typ.Out(i))
	}
	return reflect.FuncOf(in, out, typ.IsVariadic())
}

// simplegoDir is the source folder of the simplego this test binary was
// built from: the path the compiler recorded for setNodeExecutor, or, in a
// -trimpath build, the module's folder from the go command.
func simplegoDir(t *testing.T) string {
	f := runtime.FuncForPC(reflect.ValueOf(sgSetNodeExecutor).Pointer())
	file, _ := f.FileLine(f.Entry())
	if _, err := os.Stat(file); err == nil {
		return filepath.Dir(file)
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", gomlxModule).Output()
	if err != nil {
		t.Fatalf("simplego's source: %s is not a file and go list failed: %v", file, err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "backends", "simplego")
}
