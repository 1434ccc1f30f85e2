package weights

import (
	"encoding/json"
	"sort"
)

// Summary describes an opened model: what was found, each component's
// defining config fields, parameter counts, stored dtypes and the keys that
// map nowhere. `ldm info` prints it.
type Summary struct {
	Path       string             `json:"path"`
	Format     string             `json:"format"`
	Parameters int64              `json:"parameters"`
	Components []ComponentSummary `json:"components"`
	Unexpected []string           `json:"unexpected,omitempty"` // keys of no component
	Ignored    []string           `json:"ignored,omitempty"`
}

// ComponentSummary describes one component.
type ComponentSummary struct {
	Name         string               `json:"name"`
	Class        string               `json:"class,omitempty"`
	ConfigOrigin string               `json:"config_origin,omitempty"`
	Dir          string               `json:"dir,omitempty"`
	Config       map[string]any       `json:"config,omitempty"` // the fields that define the architecture
	Tensors      int                  `json:"tensors"`
	Parameters   int64                `json:"parameters"`
	DTypes       map[DType]DTypeCount `json:"dtypes,omitempty"`
	Unexpected   []string             `json:"unexpected,omitempty"`
	// Missing is for the keys a model package expects and the weights lack.
	// weights does not know what a model expects; the model packages (unet,
	// vae, textenc) fill it in.
	Missing []string `json:"missing,omitempty"`
}

// DTypeCount counts the tensors and parameters stored in one dtype.
type DTypeCount struct {
	Tensors    int   `json:"tensors"`
	Parameters int64 `json:"parameters"`
}

// summaryFields are the config fields worth showing per component.
var summaryFields = map[string][]string{
	UNet: {"in_channels", "out_channels", "block_out_channels", "layers_per_block", "down_block_types",
		"attention_head_dim", "cross_attention_dim", "use_linear_projection", "upcast_attention", "sample_size"},
	VAE: {"in_channels", "latent_channels", "block_out_channels", "layers_per_block", "scaling_factor", "sample_size"},
	TextEncoder: {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
		"vocab_size", "max_position_embeddings"},
	Scheduler: {"prediction_type", "beta_schedule", "beta_start", "beta_end", "num_train_timesteps", "timestep_spacing"},
	Tokenizer: {"model_max_length", "pad_token"},
}

// Summarize describes m. It reads headers only.
func Summarize(m *Model) *Summary {
	s := &Summary{Path: m.Path, Format: m.Format, Unexpected: m.Unexpected, Ignored: m.Ignored}
	names := make([]string, 0, len(m.Components))
	for n := range m.Components {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return componentOrder(names[i]) < componentOrder(names[j]) })
	for _, n := range names {
		c := m.Components[n]
		cs := ComponentSummary{Name: n, ConfigOrigin: c.ConfigOrigin, Dir: c.Dir, Unexpected: c.Unexpected}
		var cfg map[string]any
		if json.Unmarshal(c.Config, &cfg) == nil {
			cs.Class, _ = cfg["_class_name"].(string)
			if a, ok := cfg["architectures"].([]any); ok && len(a) > 0 && cs.Class == "" {
				cs.Class, _ = a[0].(string)
			}
			for _, f := range summaryFields[n] {
				if v, ok := cfg[f]; ok {
					if cs.Config == nil {
						cs.Config = map[string]any{}
					}
					cs.Config[f] = v
				}
			}
		}
		if c.Source != nil {
			cs.DTypes = map[DType]DTypeCount{}
			for _, k := range c.Source.Keys() {
				dt, shape, _ := c.Source.Info(k)
				p := int64(1)
				for _, d := range shape {
					p *= int64(d)
				}
				dc := cs.DTypes[dt]
				dc.Tensors++
				dc.Parameters += p
				cs.DTypes[dt] = dc
				cs.Tensors++
				cs.Parameters += p
			}
		}
		s.Parameters += cs.Parameters
		s.Components = append(s.Components, cs)
	}
	return s
}

// componentOrder lists components in pipeline order, others after.
func componentOrder(name string) string {
	for i, n := range []string{TextEncoder, UNet, VAE, Scheduler, Tokenizer} {
		if n == name {
			return string(rune('0' + i))
		}
	}
	return "9" + name
}
