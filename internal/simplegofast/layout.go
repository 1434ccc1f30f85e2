package simplegofast

import (
	"fmt"
	"reflect"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

const simplegoPkg = "github.com/gomlx/gomlx/backends/simplego"

// realTypes are simplego's types, found through its public API.
type realTypes struct {
	backend, builder, node, buffer, dotData reflect.Type
}

// probe builds a tiny DotGeneral on a simplego backend to find the real
// types behind backends.Backend, backends.Op and backends.Buffer, and the
// type of the DotGeneral node's data.
func probe(b backends.Backend) (rt realTypes, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("probing simplego types: %v", r)
		}
	}()
	rt.backend = reflect.TypeOf(b)
	bld := b.Builder("simplegofast_probe")
	rt.builder = reflect.TypeOf(bld)
	x, err := bld.Parameter("x", shapes.Make(dtypes.Float32, 2, 3), nil)
	if err != nil {
		return rt, err
	}
	y, err := bld.DotGeneral(x, []int{1}, nil, x, []int{1}, nil)
	if err != nil {
		return rt, err
	}
	rt.node = reflect.TypeOf(y)
	buf, err := b.BufferFromFlatData(0, []float32{1, 2, 3, 4, 5, 6}, shapes.Make(dtypes.Float32, 2, 3))
	if err != nil {
		return rt, err
	}
	rt.buffer = reflect.TypeOf(buf)
	_ = b.BufferFinalize(buf)

	// y is Reshape(DotGeneral(x, x)): find the DotGeneral node's data.
	v := reflect.ValueOf(y)
	for range 2 {
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			return rt, fmt.Errorf("node is a %s", v.Type())
		}
		n := v.Elem()
		if op := n.FieldByName("opType"); op.IsValid() && op.Kind() == reflect.Int && backends.OpType(op.Int()) == backends.OpTypeDotGeneral {
			if d := n.FieldByName("data"); d.IsValid() && d.Kind() == reflect.Interface && !d.IsNil() {
				rt.dotData = d.Elem().Type()
			}
			break
		}
		in := n.FieldByName("inputs")
		if !in.IsValid() || in.Kind() != reflect.Slice || in.Len() != 1 {
			return rt, fmt.Errorf("unexpected DotGeneral graph")
		}
		v = in.Index(0)
	}
	if rt.dotData == nil {
		return rt, fmt.Errorf("DotGeneral node data not found")
	}
	return rt, nil
}

// verifyLayouts checks that the mirrored types have exactly the layout of
// simplego's: same field names, offsets, sizes and types, where a simplego
// type must correspond to its mirror.
func verifyLayouts(rt realTypes) error {
	mirrors := map[reflect.Type]reflect.Type{}
	pairs := []struct {
		real, mirror reflect.Type
		name         string
		opaque       bool
	}{
		{rt.backend, reflect.TypeFor[*sgBackend](), "Backend", true},
		{rt.builder, reflect.TypeFor[*sgBuilder](), "Builder", true},
		{rt.node, reflect.TypeFor[*sgNode](), "Node", false},
		{rt.buffer, reflect.TypeFor[*sgBuffer](), "Buffer", false},
		{rt.dotData, reflect.TypeFor[*dotGeneralNodeData](), "dotGeneralNodeData", false},
	}
	for _, p := range pairs {
		if p.real == nil || p.real.Kind() != reflect.Pointer {
			return fmt.Errorf("simplego.%s: not a pointer type (%v)", p.name, p.real)
		}
		e := p.real.Elem()
		if e.PkgPath() != simplegoPkg || e.Name() != p.name || e.Kind() != reflect.Struct {
			return fmt.Errorf("expected *simplego.%s, found %s", p.name, p.real)
		}
		mirrors[e] = p.mirror.Elem()
	}
	for _, p := range pairs {
		if p.opaque {
			continue
		}
		if err := sameStruct(p.real.Elem(), p.mirror.Elem(), mirrors); err != nil {
			return fmt.Errorf("simplego.%s: %w", p.name, err)
		}
	}
	return nil
}

func sameStruct(real, mirror reflect.Type, mirrors map[reflect.Type]reflect.Type) error {
	if real.Size() != mirror.Size() || real.NumField() != mirror.NumField() {
		return fmt.Errorf("size %d with %d fields, mirror %d with %d", real.Size(), real.NumField(), mirror.Size(), mirror.NumField())
	}
	for i := range real.NumField() {
		rf, mf := real.Field(i), mirror.Field(i)
		if rf.Name != mf.Name || rf.Offset != mf.Offset {
			return fmt.Errorf("field %d is %s at %d, mirror %s at %d", i, rf.Name, rf.Offset, mf.Name, mf.Offset)
		}
		if !sameType(rf.Type, mf.Type, mirrors) {
			return fmt.Errorf("field %s has type %s, mirror %s", rf.Name, rf.Type, mf.Type)
		}
	}
	return nil
}

// sameType: identical, or a simplego type and its mirror, or pointers to /
// slices of such.
func sameType(real, mirror reflect.Type, mirrors map[reflect.Type]reflect.Type) bool {
	if real == mirror {
		return true
	}
	if m, ok := mirrors[real]; ok {
		return m == mirror
	}
	if real.Kind() != mirror.Kind() {
		return false
	}
	switch real.Kind() {
	case reflect.Pointer, reflect.Slice:
		return sameType(real.Elem(), mirror.Elem(), mirrors)
	}
	return false
}
