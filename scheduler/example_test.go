package scheduler_test

import (
	"fmt"
	"math"

	"github.com/ldm-project/ldm/scheduler"
)

// The txt2img loop a pipeline runs. The model here is a stand-in for the
// U-Net; noise is the pipeline's seeded generator (any Noise).
func Example() {
	config := []byte(`{"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear",
		"beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1, "skip_prk_steps": true}`)
	s, err := scheduler.New("DPM++ 2M Karras", config) // A1111 name: k-diffusion; or "EulerDiscreteScheduler", "euler_ancestral", …
	if err != nil {
		panic(err)
	}
	if err := s.SetTimesteps(20); err != nil {
		panic(err)
	}
	model := func(x []float32, t float64) []float32 { // predicts ε
		out := make([]float32, len(x))
		for k, v := range x {
			out[k] = 0.9 * v
		}
		return out
	}
	x := s.InitLatents([]float32{0.3, -1.1, 0.7, 1.9}) // unit normal noise × InitNoiseSigma
	for i, t := range s.Timesteps() {
		eps := model(s.ScaleModelInput(x, i), t)
		if x, err = s.Step(eps, i, x, nil); err != nil {
			panic(err)
		}
	}
	fmt.Println(s.Class(), len(s.Timesteps()), "model calls")
	// Output: k-diffusion dpmpp_2m (karras) 20 model calls
}

// img2img: start part-way through the schedule from noised init latents.
func ExampleScheduler_BeginIndex() {
	s, _ := scheduler.New("Heun", []byte(`{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}`))
	_ = s.SetTimesteps(10)
	begin := s.BeginIndex(0.6) // strength 0.6
	initLatents := []float32{0.5, -0.2}
	noise := []float32{1.2, 0.4}
	x, _ := s.AddNoiseAt(initLatents, noise, begin)
	for i := begin; i < len(s.Timesteps()); i++ {
		eps := make([]float32, len(x)) // model(s.ScaleModelInput(x, i), s.Timesteps()[i])
		x, _ = s.Step(eps, i, x, nil)
	}
	fmt.Printf("%d of %d model calls, t0 = %.0f\n", len(s.Timesteps())-begin, len(s.Timesteps()), math.Round(s.Timesteps()[begin]))
	// Output: 11 of 19 model calls, t0 = 555
}
