package music

import (
	"testing"

	"github.com/ldm-project/ldm/audio"
	"github.com/ldm-project/ldm/data"
)

// The metrics only mean something if the DSP classifiers recognise the real
// clips' attributes well above chance.
func TestClassifiersRecogniseRealClips(t *testing.T) {
	o := data.AudioOptions{N: 2000, Seed: 0, Holdout: 0.05, Params: data.AudioParams()}
	cls, err := fit(o, 150)
	if err != nil {
		t.Fatal(err)
	}
	real := map[string]Score{}
	for i := 0; i < 30; i++ {
		x, s, err := data.AudioClip(o, 1000+i) // beyond the fitted clips
		if err != nil {
			t.Fatal(err)
		}
		tally(real, labels(s), cls.predict(audio.Analyze(x, o.Params.SampleRate), s.Kind))
	}
	chance := map[string]float64{"tempo": 1.0 / 3, "key": 1.0 / 14, "scale": 1.0 / 7, "instrument": 1.0 / 5}
	for _, a := range Attributes {
		t.Logf("%-10s real %s, chance %.0f %%", a, real[a], 100*chance[a])
		if real[a].Rate() < 1.5*chance[a] {
			t.Errorf("%s: real clips classified at %s, not well above chance %.0f %%", a, real[a], 100*chance[a])
		}
	}
}
