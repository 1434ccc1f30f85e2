package data

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Layout names how a dataset was found on disk.
type Layout string

const (
	// LayoutImageFolder is the Hugging Face imagefolder layout: one or more
	// metadata.jsonl (or metadata.csv) files whose file_name column is
	// relative to the metadata file's folder, and whose text column is the
	// caption.
	LayoutImageFolder Layout = "imagefolder"
	// LayoutCSV is a single CSV file with a file_name,text header.
	LayoutCSV Layout = "csv"
	// LayoutCaptionFiles is the kohya layout: each image's caption is in a
	// .txt (or .caption) file with the same base name beside it.
	LayoutCaptionFiles Layout = "captions"
)

// Item is one image–caption pair.
type Item struct {
	// Path is the image file, joined onto the dataset folder.
	Path string
	// Name is Path relative to the dataset root, with forward slashes; it
	// identifies the item in the dataset fingerprint.
	Name    string
	Caption string
	// Fields holds the metadata columns other than file_name and text
	// (for example category, split). Non-string JSON values keep their
	// compact JSON text.
	Fields map[string]string
}

// Dataset is an ordered list of items. The order is deterministic (metadata
// order, files in lexical order), so that a shuffle seed means the same thing
// on every machine.
type Dataset struct {
	Root   string
	Layout Layout
	Items  []Item
	// Uncaptioned counts the images in the kohya layout that had no caption
	// file; they are kept with an empty caption.
	Uncaptioned int
}

// Len is the number of items.
func (d *Dataset) Len() int { return len(d.Items) }

// Filter returns a dataset holding the items for which keep is true, in the
// same order.
func (d *Dataset) Filter(keep func(Item) bool) *Dataset {
	out := &Dataset{Root: d.Root, Layout: d.Layout}
	for _, it := range d.Items {
		if keep(it) {
			out.Items = append(out.Items, it)
		}
	}
	return out
}

// Split returns the items whose "split" field is name ("train" or "test" in
// the datasets this package builds).
func (d *Dataset) Split(name string) *Dataset {
	return d.Filter(func(it Item) bool { return it.Fields["split"] == name })
}

// TrainTest divides the dataset into the items to train on and the held-out
// ones. A dataset whose metadata has a "split" column keeps its split: rows
// of split "train", and rows that leave the column empty, train; every other
// split is held out, and holdout is ignored. Without the column (a kohya
// folder, a plain imagefolder or CSV) everything trains but a fraction
// holdout of the items, picked by a hash of each item's name so that the
// choice is the same on every run and an added image does not move the
// others, is held out. test is empty (not nil) when nothing is held out.
func (d *Dataset) TrainTest(holdout float64) (train, test *Dataset, err error) {
	if !(holdout >= 0 && holdout < 1) {
		return nil, nil, fmt.Errorf("holdout %g: want a fraction in [0, 1)", holdout)
	}
	splits := map[string]int{}
	for _, it := range d.Items {
		if s, ok := it.Fields["split"]; ok {
			splits[s]++
		}
	}
	isTrain := func(it Item) bool { return heldOutByName(it.Name) >= holdout }
	if len(splits) > 0 {
		isTrain = func(it Item) bool { s := it.Fields["split"]; return s == "" || s == "train" }
	}
	train = d.Filter(isTrain)
	test = d.Filter(func(it Item) bool { return !isTrain(it) })
	if train.Len() == 0 {
		what := fmt.Sprintf("%d items", d.Len())
		if len(splits) > 0 {
			var parts []string
			for s, n := range splits {
				parts = append(parts, fmt.Sprintf("%d of split %q", n, s))
			}
			sort.Strings(parts)
			return nil, nil, fmt.Errorf("dataset %s (%s layout): found %s and no item of split \"train\" to train on: "+
				"mark the training rows split=train, or remove the split column to train on everything", d.Root, d.Layout, strings.Join(parts, ", "))
		}
		return nil, nil, fmt.Errorf("dataset %s (%s layout): --holdout %g holds out all %s and leaves nothing to train on", d.Root, d.Layout, holdout, what)
	}
	return train, test, nil
}

// heldOutByName maps an item name to a number uniform in [0, 1): items below
// the holdout fraction are held out.
func heldOutByName(name string) float64 {
	h := sha256.Sum256([]byte("ldm holdout\x00" + name))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
}

// Fingerprint identifies the item list (names and captions, in order). A
// saved loader State records it so that a resume on a changed dataset is
// refused instead of silently yielding a different order.
func (d *Dataset) Fingerprint() string {
	h := sha256.New()
	for _, it := range d.Items {
		fmt.Fprintf(h, "%q %q\n", it.Name, it.Caption)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// imageExts are the formats the loader decodes (imaging registers png, jpeg,
// gif, bmp and tiff; this package adds webp).
var imageExts = map[string]bool{
	".png": true, ".jpg": true, ".jpeg": true, ".webp": true,
	".gif": true, ".bmp": true, ".tif": true, ".tiff": true,
}

// IsImageFile reports whether name has an image extension the loader reads.
func IsImageFile(name string) bool { return imageExts[strings.ToLower(filepath.Ext(name))] }

// Open reads a dataset from path:
//   - a .jsonl file: imagefolder metadata (file_name, text);
//   - a .csv file: a file_name,text header and one row per image;
//   - a folder holding metadata.jsonl or metadata.csv files (searched
//     recursively; each file's names are relative to its own folder);
//   - otherwise a folder of images, each captioned by a .txt or .caption file
//     with the same base name (recursively; images without one get an empty
//     caption).
//
// Images are not opened here: an unreadable one is skipped, with a warning,
// when the loader reaches it.
func Open(path string) (*Dataset, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening dataset: %w", err)
	}
	if !st.IsDir() {
		d := &Dataset{Root: filepath.Dir(path)}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".jsonl":
			d.Layout = LayoutImageFolder
		case ".csv":
			d.Layout = LayoutCSV
		default:
			return nil, fmt.Errorf("dataset %s: want a folder, a .jsonl or a .csv file", path)
		}
		if d.Items, err = readMetadata(path, d.Root); err != nil {
			return nil, err
		}
		return d, nil
	}
	d := &Dataset{Root: path}
	var metas, images []string
	err = filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if p != path && strings.HasPrefix(e.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case e.Name() == "metadata.jsonl" || e.Name() == "metadata.csv":
			metas = append(metas, p)
		case IsImageFile(e.Name()):
			images = append(images, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading dataset folder: %w", err)
	}
	if len(metas) > 0 {
		d.Layout = LayoutImageFolder
		sort.Strings(metas)
		for _, m := range metas {
			items, err := readMetadata(m, path)
			if err != nil {
				return nil, err
			}
			d.Items = append(d.Items, items...)
		}
		if len(d.Items) == 0 {
			return nil, fmt.Errorf("dataset %s: the metadata files list no images", path)
		}
		return d, nil
	}
	d.Layout = LayoutCaptionFiles
	for _, p := range images {
		caption, ok, err := readCaptionFile(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			d.Uncaptioned++
		}
		d.Items = append(d.Items, Item{Path: p, Name: relName(path, p), Caption: caption})
	}
	if len(d.Items) == 0 {
		return nil, fmt.Errorf("dataset %s: no images and no metadata.jsonl or metadata.csv", path)
	}
	if d.Uncaptioned > 0 {
		slog.Warn("images without a caption file get an empty caption", "dataset", path, "count", d.Uncaptioned, "of", len(d.Items))
	}
	return d, nil
}

func relName(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		r = p
	}
	return filepath.ToSlash(r)
}

// readCaptionFile reads the kohya caption beside image p.
func readCaptionFile(p string) (string, bool, error) {
	base := strings.TrimSuffix(p, filepath.Ext(p))
	for _, ext := range []string{".txt", ".caption"} {
		b, err := os.ReadFile(base + ext)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", false, fmt.Errorf("reading caption: %w", err)
		}
		return strings.TrimSpace(string(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")))), true, nil
	}
	return "", false, nil
}

// readMetadata reads a metadata.jsonl or CSV file whose file_name column is
// relative to the file's own folder; item names are relative to root.
func readMetadata(path, root string) ([]Item, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening metadata: %w", err)
	}
	defer f.Close()
	dir := filepath.Dir(path)
	var items []Item
	add := func(fileName, text string, fields map[string]string, where string) error {
		if fileName == "" {
			return fmt.Errorf("%s: no file_name", where)
		}
		p := filepath.Join(dir, filepath.FromSlash(fileName))
		items = append(items, Item{Path: p, Name: relName(root, p), Caption: text, Fields: fields})
		return nil
	}
	if strings.EqualFold(filepath.Ext(path), ".csv") {
		return items, readCSV(f, path, add)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
		}
		if len(b) == 0 {
			continue
		}
		var row map[string]json.RawMessage
		if err := json.Unmarshal(b, &row); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		fileName, ok := jsonString(row["file_name"])
		if !ok {
			return nil, fmt.Errorf("%s:%d: want a string file_name", path, line)
		}
		textKey := "text"
		if _, has := row[textKey]; !has {
			textKey = "caption"
		}
		text, _ := jsonString(row[textKey])
		fields := map[string]string{}
		for k, v := range row {
			if k == "file_name" || k == textKey || string(v) == "null" {
				continue
			}
			if s, ok := jsonString(v); ok {
				fields[k] = s
				continue
			}
			var c bytes.Buffer
			if json.Compact(&c, v) == nil {
				fields[k] = c.String()
			}
		}
		if len(fields) == 0 {
			fields = nil
		}
		if err := add(fileName, text, fields, fmt.Sprintf("%s:%d", path, line)); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return items, nil
}

func jsonString(v json.RawMessage) (string, bool) {
	var s string
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

func readCSV(r io.Reader, path string, add func(fileName, text string, fields map[string]string, where string) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("%s: reading the header: %w", path, err)
	}
	fileCol, textCol := -1, -1
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		header[i] = h
		switch h {
		case "file_name":
			fileCol = i
		case "text":
			textCol = i
		case "caption":
			if textCol < 0 {
				textCol = i
			}
		}
	}
	if fileCol < 0 || textCol < 0 {
		return fmt.Errorf("%s: the header needs file_name and text columns, got %q", path, header)
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			return fmt.Errorf("%s:%d: %d columns, the header has %d", path, line, len(rec), len(header))
		}
		var fields map[string]string
		for i, v := range rec {
			if i != fileCol && i != textCol {
				if fields == nil {
					fields = map[string]string{}
				}
				fields[header[i]] = v
			}
		}
		if err := add(rec[fileCol], rec[textCol], fields, fmt.Sprintf("%s:%d", path, line)); err != nil {
			return err
		}
	}
}
