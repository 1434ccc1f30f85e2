package data

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFiles creates files under dir from a name → content map.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeImage saves img as a PNG at dir/name.
func writeImage(t testing.TB, dir, name string, img image.Image) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	return p
}

// solid is a w×h image of one colour.
func solid(w, h int, c color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	return img
}

type wantItem struct {
	Name, Caption string
	Fields        map[string]string
}

func items(d *Dataset) []wantItem {
	var out []wantItem
	for _, it := range d.Items {
		out = append(out, wantItem{it.Name, it.Caption, it.Fields})
	}
	return out
}

func TestOpenReadsEachLayout(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		open   string // relative to the folder; "" opens the folder
		layout Layout
		want   []wantItem
		uncap  int
	}{
		{
			name: "imagefolder jsonl with extra fields and a nested metadata file",
			files: map[string]string{
				"metadata.jsonl": `{"file_name":"a.png","text":"an apple","category":"food","split":"train"}` + "\n\n" +
					`{"file_name":"img/b.png","text":"a bee","tags":["x","y"],"n":3,"gone":null}` + "\n",
				"sub/metadata.jsonl": "\ufeff" + `{"file_name":"c.png","caption":"a cat"}` + "\n",
			},
			layout: LayoutImageFolder,
			want: []wantItem{
				{"a.png", "an apple", map[string]string{"category": "food", "split": "train"}},
				{"img/b.png", "a bee", map[string]string{"tags": `["x","y"]`, "n": "3"}},
				{"sub/c.png", "a cat", nil},
			},
		},
		{
			name: "folder with metadata.csv",
			files: map[string]string{
				"metadata.csv": "file_name,text,split\na.png,\"an apple, red\",test\nb/c.png,a cat,train\n",
			},
			layout: LayoutImageFolder,
			want: []wantItem{
				{"a.png", "an apple, red", map[string]string{"split": "test"}},
				{"b/c.png", "a cat", map[string]string{"split": "train"}},
			},
		},
		{
			name:   "csv file",
			files:  map[string]string{"pairs.csv": "\ufefffile_name,text\nx.jpg,an x\n"},
			open:   "pairs.csv",
			layout: LayoutCSV,
			want:   []wantItem{{"x.jpg", "an x", nil}},
		},
		{
			name:   "jsonl file",
			files:  map[string]string{"data/train.jsonl": `{"file_name":"x.png","text":"an x"}`},
			open:   "data/train.jsonl",
			layout: LayoutImageFolder,
			want:   []wantItem{{"x.png", "an x", nil}},
		},
		{
			name: "kohya captions, recursive, hidden folders skipped",
			files: map[string]string{
				"10_dog/a.png": "", "10_dog/a.txt": "  a dog\n",
				"10_dog/b.JPG": "", "10_dog/b.caption": "\ufeffanother dog",
				"z.webp": "", "z.txt": "zed", "notes.md": "ignored",
				"nocap.png":    "",
				".cache/x.png": "", ".cache/x.txt": "hidden",
			},
			layout: LayoutCaptionFiles,
			want: []wantItem{
				{"10_dog/a.png", "a dog", nil},
				{"10_dog/b.JPG", "another dog", nil},
				{"nocap.png", "", nil},
				{"z.webp", "zed", nil},
			},
			uncap: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			d, err := Open(filepath.Join(dir, filepath.FromSlash(tt.open)))
			if err != nil {
				t.Fatal(err)
			}
			if d.Layout != tt.layout || d.Uncaptioned != tt.uncap {
				t.Errorf("layout %q uncaptioned %d, want %q %d", d.Layout, d.Uncaptioned, tt.layout, tt.uncap)
			}
			if got := items(d); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("items\n got %+v\nwant %+v", got, tt.want)
			}
			for _, it := range d.Items {
				if !strings.HasPrefix(it.Path, dir) {
					t.Errorf("path %s is not under %s", it.Path, dir)
				}
			}
		})
	}
}

func TestOpenRejectsBrokenMetadata(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		open  string
		want  string
	}{
		{"csv without text column", map[string]string{"metadata.csv": "file_name,label\na.png,x\n"}, "", "needs file_name and text columns"},
		{"csv short row", map[string]string{"metadata.csv": "file_name,text\na.png\n"}, "", "metadata.csv:2: 1 columns, the header has 2"},
		{"jsonl bad line", map[string]string{"metadata.jsonl": "{\"file_name\":\"a.png\"}\n{oops\n"}, "", "metadata.jsonl:2:"},
		{"jsonl no file_name", map[string]string{"metadata.jsonl": "{\"text\":\"x\"}\n"}, "", "want a string file_name"},
		{"empty folder", map[string]string{"readme.md": "x"}, "", "no images and no metadata.jsonl"},
		{"other file", map[string]string{"a.txt": "x"}, "a.txt", "want a folder, a .jsonl or a .csv file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			_, err := Open(filepath.Join(dir, tt.open))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestFilterSplitAndFingerprint(t *testing.T) {
	d := &Dataset{Items: []Item{
		{Name: "a", Caption: "x", Fields: map[string]string{"split": "train"}},
		{Name: "b", Caption: "y", Fields: map[string]string{"split": "test"}},
		{Name: "c", Caption: "z"},
	}}
	if got := d.Split("test"); got.Len() != 1 || got.Items[0].Name != "b" {
		t.Errorf("Split(test) = %+v", got.Items)
	}
	if got := d.Split("train"); got.Len() != 1 || got.Items[0].Name != "a" {
		t.Errorf("Split(train) = %+v", got.Items)
	}
	f := d.Fingerprint()
	d.Items[2].Caption = "changed"
	if d.Fingerprint() == f {
		t.Error("fingerprint ignores a caption change")
	}
}

// Every layout Open reads trains as it is: a split column is optional, and
// only a dataset that has one and no "train" row is refused, by an error
// that says what was found.
func TestTrainTestTakesEveryLayout(t *testing.T) {
	row := func(name, extra string) string {
		return `{"file_name": "` + name + `", "text": "a cat"` + extra + "}\n"
	}
	cases := []struct {
		name              string
		files             map[string]string
		holdout           float64
		wantTrain, wantHe int
		wantErr           string
	}{
		{"kohya", map[string]string{"a.png": "x", "a.txt": "a cat", "b.png": "x", "b.txt": "a dog"}, 0, 2, 0, ""},
		{"imagefolder without split", map[string]string{"metadata.jsonl": row("a.png", "") + row("b.png", "")}, 0, 2, 0, ""},
		{"csv", map[string]string{"metadata.csv": "file_name,text\na.png,a cat\nb.png,a dog\n"}, 0, 2, 0, ""},
		{"split column", map[string]string{"metadata.jsonl": row("a.png", `, "split": "train"`) + row("b.png", `, "split": "test"`) + row("c.png", "")}, 0.5, 2, 1, ""},
		{"only test rows", map[string]string{"metadata.jsonl": row("a.png", `, "split": "test"`) + row("b.png", `, "split": "validation"`)}, 0, 0, 0,
			`found 1 of split "test", 1 of split "validation" and no item of split "train"`},
		{"holdout of everything", map[string]string{"metadata.jsonl": row("a.png", "")}, 0.999999, 0, 0, "leaves nothing to train on"},
		{"bad holdout", map[string]string{"metadata.jsonl": row("a.png", "")}, 1, 0, 0, "want a fraction in [0, 1)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, c.files)
			d, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			tr, he, err := d.TrainTest(c.holdout)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tr.Len() != c.wantTrain || he.Len() != c.wantHe {
				t.Fatalf("%d train, %d held out; want %d, %d", tr.Len(), he.Len(), c.wantTrain, c.wantHe)
			}
		})
	}
}

// Without a split column the held-out items are chosen by name: the same on
// every call, about the asked fraction, and an added item moves no other.
func TestHoldoutByNameIsStable(t *testing.T) {
	var d Dataset
	for i := range 1000 {
		d.Items = append(d.Items, Item{Name: strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strings.Repeat("y", i/26)})
	}
	_, he, err := d.TrainTest(0.2)
	if err != nil {
		t.Fatal(err)
	}
	if n := he.Len(); n < 150 || n > 250 {
		t.Errorf("held out %d of 1000 at 0.2", n)
	}
	more := d
	more.Items = append([]Item{{Name: "new.png"}}, d.Items...)
	_, he2, _ := more.TrainTest(0.2)
	held := map[string]bool{}
	for _, it := range he2.Items {
		held[it.Name] = true
	}
	for _, it := range he.Items {
		if !held[it.Name] {
			t.Fatalf("%s left the held-out set when an item was added", it.Name)
		}
	}
}
