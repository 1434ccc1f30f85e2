//go:build ignore

// Command eval measures how far a LoRA moves a model's generations towards
// an image folder (the acceptance run of docs/LORA.md). It renders the
// folder's captions with fixed seeds at several LoRA weights and compares
// each set of images with the folder, and with a control set of other
// emoji, in two feature spaces: the emoji classifier's pooled features
// (package classify) and 16×16 downsampled RGB pixels.
//
//	go run docs/lora/eval.go -lora run/lora.safetensors -data /work/data/lora50 -classifier classify/models/emoji
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/png"
	"log"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ldm-project/ldm/classify"
	"github.com/ldm-project/ldm/eval"
	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/nn"
)

type row struct {
	File    string `json:"file_name"`
	Text    string `json:"text"`
	Set     string `json:"set"`
	Subcat  string `json:"subcategory"`
	Split   string `json:"split"`
	Concept string `json:"concept"`
}

func readRows(dir string) []row {
	f, err := os.Open(filepath.Join(dir, "metadata.jsonl"))
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	var rows []row
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			log.Fatal(err)
		}
		rows = append(rows, r)
	}
	return rows
}

func readImage(path string) image.Image {
	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		log.Fatalf("%s: %v", path, err)
	}
	return img
}

// pixels is the image on white, area-averaged to s×s, RGB in [0, 1].
func pixels(img image.Image, s int) []float64 {
	b := img.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Over)
	out := make([]float64, s*s*3)
	fy, fx := b.Dy()/s, b.Dx()/s
	for y := range b.Dy() {
		for x := range b.Dx() {
			o := ((y/fy)*s + x/fx) * 3
			for c := range 3 {
				out[o+c] += float64(dst.Pix[(y*b.Dx()+x)*4+c]) / 255 / float64(fx*fy)
			}
		}
	}
	return out
}

// meanNN is the mean over a of the Euclidean distance to the nearest b.
func meanNN(a, b [][]float64) float64 {
	var sum float64
	for _, x := range a {
		best := math.Inf(1)
		for _, y := range b {
			var d float64
			for i := range x {
				d += (x[i] - y[i]) * (x[i] - y[i])
			}
			best = math.Min(best, d)
		}
		sum += math.Sqrt(best)
	}
	return sum / float64(len(a))
}

func main() {
	model := flag.String("model", "models/default", "base model")
	lora := flag.String("lora", "", "LoRA file")
	data := flag.String("data", "/work/data/lora50", "the LoRA's image folder (metadata.jsonl)")
	control := flag.String("control", "/work/data/emoji", "emoji dataset the control images come from")
	clfDir := flag.String("classifier", "classify/models/emoji", "classifier folder")
	weightList := flag.String("weights", "0,0.5,1", "LoRA weights to render")
	steps := flag.Int("steps", 20, "sampling steps")
	flag.Parse()

	rows := readRows(*data)
	var refImgs []image.Image
	for _, r := range rows {
		refImgs = append(refImgs, readImage(filepath.Join(*data, r.File)))
	}
	// Control: as many google-set emoji of other subcategories, spread over the set.
	var others []row
	for _, r := range readRows(*control) {
		if r.Set == "google" && r.Subcat != rows[0].Subcat && r.Split == "train" {
			others = append(others, r)
		}
	}
	var ctlImgs []image.Image
	for i := range len(rows) {
		ctlImgs = append(ctlImgs, readImage(filepath.Join(*control, others[i*len(others)/len(rows)].File)))
	}

	b, err := nn.NewBackend("go")
	if err != nil {
		log.Fatal(err)
	}
	clf, err := classify.Load(b, *clfDir)
	if err != nil {
		log.Fatal(err)
	}
	head := clf.Config.HeadIndex("subcategory")
	features := func(imgs []image.Image) (cf, px [][]float64, labels []string) {
		s := clf.Config.Size
		x := make([]float32, 0, len(imgs)*s*s*3)
		for _, img := range imgs {
			x = append(x, classify.ImageNHWC(img, s)...)
			px = append(px, pixels(img, 16))
		}
		pr, err := clf.Run(x, len(imgs))
		if err != nil {
			log.Fatal(err)
		}
		for _, lg := range pr.Logits[head] {
			best := 0
			for j, v := range lg {
				if v > lg[best] {
					best = j
				}
			}
			labels = append(labels, clf.Config.Heads[head].Labels[best])
		}
		return pr.Features, px, labels
	}
	refC, refP, refL := features(refImgs)
	ctlC, ctlP, _ := features(ctlImgs)
	share := func(labels []string) float64 {
		n := 0
		for _, l := range labels {
			if l == rows[0].Subcat {
				n++
			}
		}
		return float64(n) / float64(len(labels))
	}
	fmt.Printf("reference: %d images of %q (classifier calls %.0f%% of them %s); control: %d other emoji\n\n",
		len(rows), rows[0].Subcat, 100*share(refL), rows[0].Subcat, len(ctlImgs))

	p, err := ldm.Load(*model, ldm.LoadOptions{Backend: "go"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("| LoRA weight | classified " + rows[0].Subcat + " | classifier FD → folder | classifier KID → folder | classifier NN → folder | classifier NN → control | pixel FD → folder | pixel KID → folder | pixel NN → folder | pixel NN → control |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, ws := range strings.Split(*weightList, ",") {
		w, err := strconv.ParseFloat(ws, 64)
		if err != nil {
			log.Fatal(err)
		}
		var imgs []image.Image
		for i, r := range rows {
			req := ldm.Request{Prompt: r.Text, Seed: int64(1000 + i), Steps: *steps}
			if w != 0 {
				req.LoRAs = []ldm.LoRASpec{{Path: *lora, Weight: w}}
			}
			res, err := p.Generate(context.Background(), req, ldm.Options{})
			if err != nil {
				log.Fatal(err)
			}
			imgs = append(imgs, res[0].Image)
		}
		gc, gp, gl := features(imgs)
		fdC, err := eval.FD(refC, gc)
		if err != nil {
			log.Fatal(err)
		}
		kidC, err := eval.KID(refC, gc)
		if err != nil {
			log.Fatal(err)
		}
		fdP, err := eval.FD(refP, gp)
		if err != nil {
			log.Fatal(err)
		}
		kidP, err := eval.KID(refP, gp)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("| %g | %.0f%% | %.2f | %.4f | %.3f | %.3f | %.2f | %.4f | %.3f | %.3f |\n", w, 100*share(gl),
			fdC, kidC, meanNN(gc, refC), meanNN(gc, ctlC), fdP, kidP, meanNN(gp, refP), meanNN(gp, ctlP))
		if dir := os.Getenv("LORA_EVAL_GRID"); dir != "" {
			writeGrid(filepath.Join(dir, fmt.Sprintf("weight-%s.png", ws)), imgs)
		}
	}
}

// writeGrid saves the images as one 10-wide PNG grid.
func writeGrid(path string, imgs []image.Image) {
	s := imgs[0].Bounds().Dx()
	cols := 10
	rows := (len(imgs) + cols - 1) / cols
	g := image.NewRGBA(image.Rect(0, 0, cols*s, rows*s))
	for i, img := range imgs {
		r := image.Rect((i%cols)*s, (i/cols)*s, (i%cols+1)*s, (i/cols+1)*s)
		draw.Draw(g, r, img, img.Bounds().Min, draw.Src)
	}
	if err := ldm.SaveImage(path, g, ldm.Infotext{}, ldm.PNG, 0); err != nil {
		log.Fatal(err)
	}
}
