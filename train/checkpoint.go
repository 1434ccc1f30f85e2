package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/weights"
)

// checkpointState is what a checkpoint holds besides the variables. The data
// order and every random draw of a step are functions of (seed, step), so the
// step restores them.
type checkpointState struct {
	Step   int             `json:"step"`
	Config Config          `json:"config"`
	Losses []float32       `json:"losses"`
	Extra  json.RawMessage `json:"extra,omitempty"`
}

const stateKey = "ldm_train_state"

// CheckpointName is the file name of the checkpoint after step.
func CheckpointName(step int) string { return fmt.Sprintf("ckpt-%08d.safetensors", step) }

// Save writes every variable of the context (model, AdamW moments, EMA,
// gradient sums) but those under FrozenScope, and the trainer state to dir/ckpt-<step>.safetensors,
// atomically, then deletes all but the newest keep checkpoints (keep ≤ 0
// keeps all). extra is stored verbatim (the caller's run description).
func (t *Trainer) Save(dir string, keep int, extra any) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	st := checkpointState{Step: t.Step, Config: t.Config, Losses: t.Losses}
	if extra != nil {
		b, err := json.Marshal(extra)
		if err != nil {
			return "", err
		}
		st.Extra = b
	}
	meta, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	frozen := strings.TrimPrefix(FrozenScope, "/") + "."
	list, err := variableTensors(t.Ctx, func(k string) bool { return !strings.HasPrefix(k, frozen) }, false)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, CheckpointName(t.Step))
	if err := weights.WriteFile(path, list, map[string]string{stateKey: string(meta)}); err != nil {
		return "", err
	}
	if keep > 0 {
		old, _ := Checkpoints(dir)
		for len(old) > keep {
			_ = os.Remove(old[0])
			old = old[1:]
		}
	}
	return path, nil
}

// Checkpoints lists the checkpoints in dir, oldest first.
func Checkpoints(dir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "ckpt-*.safetensors"))
	sort.Strings(m)
	return m, err
}

// Latest is the newest checkpoint in dir, or "" when there is none.
func Latest(dir string) string {
	m, _ := Checkpoints(dir)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1]
}

// Resume loads a checkpoint written by Save into the trainer's context and
// restores the step and loss history. The configuration must match the one
// the trainer was built with (it decides which optimiser state exists).
// extra, when not nil, receives the caller's stored run description.
func (t *Trainer) Resume(path string, extra any) error {
	f, err := weights.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var st checkpointState
	if err := json.Unmarshal([]byte(f.Metadata[stateKey]), &st); err != nil {
		return fmt.Errorf("%s: not a training checkpoint: %w", path, err)
	}
	if err := loadFile(t.Ctx, f, ""); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	t.Step, t.Losses = st.Step, st.Losses
	if extra != nil && len(st.Extra) > 0 {
		return json.Unmarshal(st.Extra, extra)
	}
	return nil
}

// ReadCheckpointExtra returns the run description stored in a checkpoint.
func ReadCheckpointExtra(path string, extra any) error {
	f, err := weights.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var st checkpointState
	if err := json.Unmarshal([]byte(f.Metadata[stateKey]), &st); err != nil {
		return fmt.Errorf("%s: not a training checkpoint: %w", path, err)
	}
	return json.Unmarshal(st.Extra, extra)
}

// loadFile copies every tensor of f whose key starts with prefix into ctx
// (creating variables as needed); keys map to scopes as in nn.KeyToScope.
func loadFile(ctx *context.Context, f *weights.File, prefix string) error {
	return nn.Try(func() {
		for _, key := range f.Names() {
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			data, shape, err := f.Float32(key)
			if err != nil {
				panic(err)
			}
			setVar(ctx, key, tensors.FromFlatDataAndDimensions(data, shape...))
		}
	})
}

// setVar sets (or creates) the variable of a dotted key.
func setVar(ctx *context.Context, key string, t *tensors.Tensor) {
	scope, name := nn.KeyToScope(key)
	if v := ctx.GetVariableByScopeAndName(scope, name); v != nil {
		if err := v.SetValue(t); err != nil {
			panic(fmt.Errorf("%s: %w", key, err))
		}
		return
	}
	ctx.InAbsPath(scope).Checked(false).VariableWithValue(name, t)
}

// variableTensors lists the float32 variables whose key passes keep, sorted,
// as lazily-read tensors for weights.WriteFile. With ema the EMA copy is
// written in place of a trained variable that has one.
func variableTensors(ctx *context.Context, keep func(key string) bool, ema bool) ([]weights.WriteTensor, error) {
	var list []weights.WriteTensor
	for v := range ctx.IterVariables() {
		key := nn.ScopeToKey(v.Scope(), v.Name())
		if !keep(key) {
			continue
		}
		if v.DType() != dtypes.Float32 {
			return nil, fmt.Errorf("variable %s is %s, want float32", key, v.DType())
		}
		v := v
		list = append(list, weights.WriteTensor{Name: key, DType: weights.F32, Shape: v.Shape().Dimensions,
			Load: func() ([]float32, error) {
				var t *tensors.Tensor
				var err error
				if ema {
					t, err = EMAValue(ctx, v.Scope(), v.Name())
				} else {
					t, err = v.Value()
				}
				if err != nil {
					return nil, err
				}
				return nn.Values(t), nil
			}})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list, nil
}

// writeTensors writes a weights file (atomic) with the format metadata
// diffusers writes.
func writeTensors(path string, list []weights.WriteTensor) error {
	return weights.WriteFile(path, list, map[string]string{"format": "pt"})
}

// CheckpointLosses returns the step of a checkpoint and the loss of every
// step up to it (the loss curve a resumed run continues).
func CheckpointLosses(path string) (step int, losses []float32, err error) {
	f, err := weights.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	var st checkpointState
	if err := json.Unmarshal([]byte(f.Metadata[stateKey]), &st); err != nil {
		return 0, nil, fmt.Errorf("%s: not a training checkpoint: %w", path, err)
	}
	return st.Step, st.Losses, nil
}
